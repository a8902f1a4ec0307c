"""Names shared by the dataset builder, the training code and the cards, defined once.

hub_cards is the package both others import, so the shared names live here.
"""

from __future__ import annotations

# ReXGroundingCT and CT-RATE are CC BY-NC-SA 4.0: the dataset, its results and the weights
# trained on it inherit the terms.
DATA_LICENSE = "cc-by-nc-sa-4.0"
# prompt modes: with thinking (<think> then <answer>) or the answer only
PROMPT_MODES = ("think", "no-think")
# weights as pickles (arbitrary code when loaded): never published, never loaded
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MANIFEST_NAME = "build_manifest.json"  # written by dataset_builder's build, in the dataset repo
TRAINING_SUMMARY_NAME = "training_summary.json"  # written by a training stage with its model
TRAINING_LOGS_NAME = "training_logs.json"  # a run's final/ folder: {stage: training summary}
RUN_RECIPE_NAME = "recipe.yaml"  # a run's final/ folder: the run's recipe with its overrides
FINAL_DIR_NAME = "final"  # <run>/final: the run's final model folder
STAGE_RECIPES_DIR = "recipes"  # <run>/recipes/<stage>.yaml: each stage's own recipe
STAGE_LABELS = {"sft": "SFT", "grpo": "GRPO"}  # training stages as results and tables name them
# the two tasks on the same CT data: MedReason-R1's lesion classification (configs zoom, plain)
# and MedReasoner's reasoning grounding (config grounding)
CLASSIFICATION_TASK = "classification"
GROUNDING_TASK = "grounding"
TASKS = (CLASSIFICATION_TASK, GROUNDING_TASK)
# ours: both tasks' rows in one training set (no paper we follow trains them together)
MULTITASK = "multitask"
GROUNDING_CONFIG = "grounding"  # the dataset config of the grounding rows
