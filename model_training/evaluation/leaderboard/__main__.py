"""``python -m model_training.evaluation.leaderboard``: see ``cli``."""

from .cli import main

raise SystemExit(main())
