"""The leaderboard command (``cli``): ``reader`` reads each results file once; a layout
(``base.Layout``, registered in ``layouts.LAYOUTS``: ``accuracy``, ``paper_layouts``,
``grounding``, ``multitask``) renders a ``base.Table``; ``cli.write_table`` writes it."""

from .base import LeaderboardArguments, LeaderboardError
from .cli import build_leaderboard, main

__all__ = ["LeaderboardArguments", "LeaderboardError", "build_leaderboard", "main"]
