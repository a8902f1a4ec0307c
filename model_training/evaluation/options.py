"""The evaluator's options: ``EvaluateArguments`` (one field, one command-line option) and the
one error every evaluation step raises, ``EvaluationError``.

A field that only one task reads carries ``metadata={"task": ...}``: every other task refuses
it when it is set (``tasks.base.EvalTask.check_options``), so an option is never accepted and
ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.cli_options import to_argv
from common.errors import UserError
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from common.results_schema import IMAGE_ABLATIONS, NO_ABLATION, SHUFFLE_ABLATION

from .. import prompts
from ..grounding import ANSWER_PARSING_HELP, DEFAULT_ANSWER_PARSING, answer_parsing_problem
from .decoding import DEFAULT_REPETITION_PENALTY, Decoding, DecodingError
from .sam import DEFAULT_SAM_MODEL, sam_or_none

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_NEW_TOKENS = 96  # enough for a short <think> and the answer
DEFAULT_MODE = "both"  # every prompt mode (prompts.MODES)
DEFAULT_CONFIG = "zoom"
DEFAULT_SPLIT = "test"
DEFAULT_BACKEND = "hf"
BACKENDS = ("hf", "vllm")
DEFAULT_TENSOR_PARALLEL_SIZE = 1
DEFAULT_MAX_MODEL_LEN = 4096  # vLLM: prompt (a 512 px slice is 324 image tokens) and reply
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
DEFAULT_BASELINE_SPLIT = "train"  # grounding: the mean-box baseline's training rows
DEFAULT_ABLATION_SEED = 0  # ours: --image-ablation shuffle's permutation
BLANK_GREY = 128  # ours: --image-ablation blank's pixels, mid-grey (not the image's mean: no trace)
VLLM_ONLY = {  # vLLM's settings and their defaults: refused with --backend hf
    "tensor_parallel_size": DEFAULT_TENSOR_PARALLEL_SIZE,
    "max_model_len": DEFAULT_MAX_MODEL_LEN,
    "gpu_memory_utilization": DEFAULT_GPU_MEMORY_UTILIZATION,
}


EVAL_MODULE = "model_training.evaluation.evaluate"  # the evaluator: python -m EVAL_MODULE
# on every evaluator command line, default or not: what identifies the evaluation
ALWAYS_ON_COMMAND = ("model", "dataset", "output_dir", "config")


class EvaluationError(UserError):
    """An evaluation that cannot go on; the message says what to change."""


@dataclass
class EvaluateArguments:
    """The options of ``python -m model_training.evaluation.evaluate`` (one field, one option)."""

    model: str = field(metadata={"help": "checkpoint folder or Hub id of an image-text model"})
    dataset: str = field(metadata={"help": "built CT-RATE-VQA folder or Hub dataset id"})
    output_dir: str = field(
        metadata={"help": "folder for results.json, predictions and plots (resumable)"}
    )
    config: str = field(default=DEFAULT_CONFIG, metadata={"help": "dataset config"})
    split: str = field(default=DEFAULT_SPLIT, metadata={"help": "dataset split"})
    mode: Literal["think", "no-think", "both"] = field(
        default=DEFAULT_MODE, metadata={"help": "prompt mode(s) to evaluate"}
    )
    limit: int | None = field(
        default=None, metadata={"help": "evaluate only the first N rows (N >= 1)"}
    )
    batch_size: int = field(
        default=DEFAULT_BATCH_SIZE,
        metadata={"help": "rows per generate call (vllm: per hand-over)"},
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "reply tokens per row"}
    )
    repetition_penalty: float = field(
        default=DEFAULT_REPETITION_PENALTY,
        metadata={
            "help": "greedy decoding's repetition penalty (> 0; 1.0: none, as GRPO's rollouts), "
            "on both backends, whatever the checkpoint's generation_config says"
        },
    )
    revision: str | None = field(
        default=None, metadata={"help": "dataset revision (a Hub dataset id only)"}
    )
    allow_incomplete_build: bool = field(
        default=False,
        metadata={
            "help": "evaluate a built folder whose build_manifest.json says the build did not "
            "finish (refused by default: re-run the build, it resumes)"
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "discard predictions already in --output-dir"}
    )
    judge: str | None = field(
        default=None,
        metadata={
            "help": "reasoning-answer consistency judge: a causal LM id or path, an "
            "OpenAI-compatible endpoint URL (http://HOST:PORT/v1), or 'keyword' (no model: the "
            "single class the reasoning names; offline, for the CPU miniatures)",
            "task": CLASSIFICATION_TASK,
        },
    )
    judge_model: str | None = field(
        default=None,
        metadata={
            "help": "model name at the judge endpoint (default: its first)",
            "task": CLASSIFICATION_TASK,
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "run the model repo's own code (only baselines that need it; read it)"},
    )
    backend: Literal["hf", "vllm"] = field(
        default=DEFAULT_BACKEND,
        metadata={
            "help": "hf: transformers generate (data parallel under accelerate launch); vllm: "
            "vLLM in one process (GPU machines)"
        },
    )
    tensor_parallel_size: int = field(
        default=DEFAULT_TENSOR_PARALLEL_SIZE, metadata={"help": "vllm: GPUs per model"}
    )
    max_model_len: int = field(
        default=DEFAULT_MAX_MODEL_LEN, metadata={"help": "vllm: prompt and reply tokens"}
    )
    gpu_memory_utilization: float = field(
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        metadata={"help": "vllm: share of GPU memory for weights and KV cache"},
    )
    progress: bool = field(default=True, metadata={"help": "progress bar (--no-progress: none)"})
    sam_model: str | None = field(
        default=DEFAULT_SAM_MODEL,
        metadata={
            "help": "grounding configs: the frozen SAM (or SAM2) checkpoint, folder or Hub id, "
            "prompted with the predicted box and points for mask Dice; 'none': no mask Dice",
            "task": GROUNDING_TASK,
        },
    )
    baseline_split: str | None = field(
        default=DEFAULT_BASELINE_SPLIT,
        metadata={
            "help": "grounding configs: the split (of --dataset and --config) whose mean box and "
            "points make the mean-box baseline, scored on the evaluated rows and written to "
            "results.json as mean_box_baseline; 'none': no baseline",
            "task": GROUNDING_TASK,
        },
    )
    baseline_limit: int | None = field(
        default=None,
        metadata={
            "help": "grounding configs: the mean-box baseline reads only the first N rows of "
            "--baseline-split (as a run's dataset_limit trains on them)",
            "task": GROUNDING_TASK,
        },
    )
    answer_parsing: str = field(
        default=DEFAULT_ANSWER_PARSING,
        metadata={"help": f"{ANSWER_PARSING_HELP}; scores the replies", "task": GROUNDING_TASK},
    )
    image_ablation: str = field(
        default=NO_ABLATION,
        metadata={
            "help": "the images the rows are prompted with (does the model look at them?): none "
            f"(the real images); blank (each a uniform mid-grey, {BLANK_GREY}, image of its size "
            "and mode); shuffle (each row the image of another evaluated row, by a permutation "
            "seeded with --ablation-seed that keeps no row's own image). The gold answer, box, "
            "points and mask stay the row's; results.json records it as image_ablation"
        },
    )
    ablation_seed: int = field(
        default=DEFAULT_ABLATION_SEED,
        metadata={"help": "--image-ablation shuffle: the seed of its permutation of the rows"},
    )

    def __post_init__(self) -> None:
        self.sam_model = sam_or_none(self.sam_model)
        counts = ("limit", "batch_size", "max_new_tokens", "tensor_parallel_size", "baseline_limit")
        for name in counts:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise EvaluationError(
                    f"--{name}={value}: give a positive number of rows / tokens / GPUs"
                )
        try:
            self.decoding  # noqa: B018  (checks --repetition-penalty)
        except DecodingError as err:
            raise EvaluationError(str(err)) from None
        if self.mode not in (*prompts.MODES, "both"):
            raise EvaluationError(
                f"--mode {self.mode!r}: use one of {', '.join(prompts.MODES)}, both"
            )
        changed = [k for k, default in VLLM_ONLY.items() if getattr(self, k) != default]
        if self.backend != "vllm" and changed:  # accepted and ignored otherwise
            raise EvaluationError(
                f"--{changed[0].replace('_', '-')} applies to --backend vllm only; drop it or "
                "add --backend vllm"
            )
        if self.judge_model is not None and not str(self.judge).startswith(("http://", "https://")):
            raise EvaluationError(
                "--judge-model names the model at a judge endpoint: give --judge http(s)://.../v1 "
                "or drop --judge-model"
            )
        if self.judge is not None and "think" not in self.modes:  # the judge reads <think>
            raise EvaluationError(
                f"--judge judges the think mode's reasoning, and --mode {self.mode} has none: "
                "drop --judge, or use --mode think or both"
            )
        problem = answer_parsing_problem(self.answer_parsing)
        if problem is not None:
            raise EvaluationError(f"--{problem.replace('_', '-', 1)}")
        if self.image_ablation not in IMAGE_ABLATIONS:
            raise EvaluationError(
                f"--image-ablation {self.image_ablation!r}: use one of {', '.join(IMAGE_ABLATIONS)}"
            )
        if self.ablation_seed != DEFAULT_ABLATION_SEED and self.image_ablation != SHUFFLE_ABLATION:
            raise EvaluationError(
                f"--ablation-seed seeds --image-ablation {SHUFFLE_ABLATION}, and the ablation is "
                f"{self.image_ablation}: drop --ablation-seed or add --image-ablation "
                f"{SHUFFLE_ABLATION}"
            )
        if self.baseline_limit is not None and self.baseline_split is None:
            raise EvaluationError(
                "--baseline-limit limits the rows of --baseline-split, which is none: drop "
                "--baseline-limit or name the split"
            )

    @property
    def decoding(self) -> Decoding:
        """The decoding of every reply (both backends)."""
        return Decoding(self.max_new_tokens, self.repetition_penalty)

    @property
    def modes(self) -> tuple[str, ...]:
        """The prompt modes to evaluate."""
        return prompts.MODES if self.mode == "both" else (self.mode,)


def evaluator_process(options: EvaluateArguments) -> list[str]:
    """``-m EVAL_MODULE OPTIONS``: a child evaluator process's arguments for ``options`` (after
    its launcher: python, or accelerate launch), by the one dataclass-to-argv helper."""
    return ["-m", EVAL_MODULE, *to_argv(options, always=ALWAYS_ON_COMMAND)]
