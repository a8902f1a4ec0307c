"""Run the real lmms-eval harness with a CPU chat model for our Qwen2.5-VL checkpoints.

Runs inside the lmms-eval virtual environment (``.ci/lmms_eval_env.sh``), not the project's:

    python -m tests.lmms_harness LMMS_EVAL_CLI_ARGS...   # e.g. --model medreason_qwen2_5_vl ...

It registers ``tests.lmms_harness_model.ProjectQwen2_5_VL`` (lmms-eval's ``huggingface`` chat
class loaded in fp32 with our processor) with lmms-eval's model registry as ``MODEL_ID`` and
hands the arguments to lmms-eval's own command line (``lmms_eval.__main__.cli_evaluate``), as
``python -m lmms_eval`` would. Importing this module imports nothing from lmms-eval (the tests
in the project venv read ``MODEL_ID``).
"""

from __future__ import annotations

import sys

MODEL_ID = "medreason_qwen2_5_vl"  # the name passed to lmms-eval's --model
CHAT_CLASS_PATH = "tests.lmms_harness_model.ProjectQwen2_5_VL"


def register() -> None:
    """Make ``--model medreason_qwen2_5_vl`` resolve to ``CHAT_CLASS_PATH``."""
    from lmms_eval.models import MODEL_REGISTRY_V2
    from lmms_eval.models.registry_v2 import ModelManifest

    MODEL_REGISTRY_V2.register_manifest(
        ModelManifest(model_id=MODEL_ID, chat_class_path=CHAT_CLASS_PATH), overwrite=True
    )


def main(argv: list[str]) -> None:
    from lmms_eval.__main__ import cli_evaluate

    register()
    sys.argv = ["lmms_eval", *argv]  # lmms-eval's command line parses sys.argv
    cli_evaluate()


if __name__ == "__main__":
    main(sys.argv[1:])
