"""The demo's inputs, made where the recipe asks for them and they are missing: the synthetic
CT-RATE-VQA (``synthetic_cases``, built with the dataset builder's own ``build``) and the tiny
offline Qwen2.5-VL (``tiny_model_if_missing``). A name that reads as a Hub id is never built."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from common.errors import UserError
from common.hub_ids import hub_id_or_none
from common.names import MANIFEST_NAME

from .run_arguments import STAGES, RecipeError
from .run_recipe import RunPlan

logger = logging.getLogger("model_training.run")


def build_complete(folder: Path, configs: set[str] | frozenset[str] = frozenset()) -> bool:
    """A finished build that holds ``configs`` (a build made before a config existed, e.g. the
    classification demo's before `grounding`, is built again: the per-case cache is reused)."""
    manifest = folder / MANIFEST_NAME
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return record.get("status") == "complete" and configs <= set(record.get("configs") or [])


def ensure_dataset(plan: RunPlan) -> None:
    """Build the synthetic CT-RATE-VQA where the recipe asks for it and it is not there yet."""
    from dataset_builder.cli import BuildArguments, builder_errors, run_build
    from dataset_builder.config import BuildOptions

    run = plan.run
    if run.synthetic_cases is None:
        return
    needed: dict[str, set[str]] = {}
    for stage in plan.stages.values():
        configs = {stage.args.config_of(task) for task in stage.args.tasks}
        needed.setdefault(stage.args.dataset_name, set()).update(configs)
    for name in sorted(needed):
        folder = Path(name)
        if build_complete(folder, needed[name]):
            continue
        if hub_id_or_none(name):  # never phantom data under a name that reads as a Hub id
            logger.info(
                "dataset_name %s reads as a Hub dataset id: it is loaded from the Hub and "
                "nothing is synthesised (a local folder of that name: write ./%s)",
                name,
                name,
            )
            continue
        logger.warning(
            "building a SYNTHETIC dataset of %d PHANTOM cases into %s (synthetic_cases): not "
            "patient data; set dataset_name to a built CT-RATE-VQA to train on real data: "
            "python -m dataset_builder build --synthetic %d --synthetic-size %d "
            "--synthetic-slices %d --seed %d --out %s",
            run.synthetic_cases, folder, run.synthetic_cases, run.synthetic_size,
            run.synthetic_slices, run.synthetic_seed, folder,
        )  # fmt: skip
        try:
            with builder_errors():
                arguments = BuildArguments(
                    synthetic=run.synthetic_cases,
                    synthetic_size=run.synthetic_size,
                    synthetic_slices=run.synthetic_slices,
                    out=folder,
                )
                run_build(arguments, BuildOptions(seed=run.synthetic_seed))
        except UserError as err:
            raise RecipeError(
                f"the synthetic dataset build into {folder} failed ({err}); fix it or set "
                "dataset_name to a built CT-RATE-VQA"
            ) from err


def ensure_base_model(plan: RunPlan) -> None:
    """Build the tiny offline Qwen2.5-VL where the recipe asks for it and it is missing."""
    path = plan.stages[STAGES[0]].model_args.model_name_or_path
    if not plan.run.tiny_model_if_missing or not path or Path(path).exists():
        return
    if hub_id_or_none(path):  # a Hub model id: from_pretrained loads it; nothing is built
        return
    from .tiny_model import build_tiny_model

    logger.info("building the tiny Qwen2.5-VL: python -m model_training.tiny_model --out %s", path)
    build_tiny_model(Path(path))


__all__ = ["build_complete", "ensure_base_model", "ensure_dataset"]
