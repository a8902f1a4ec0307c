"""``python -m model_training.run --config RECIPE --dry_run``: the run's plan before the first GPU
second. Per step: its command and processes, the memory per GPU by part, the disk of its
checkpoints; the installed backends. No weights are loaded (the meta device gives the shapes)
and no GPU is needed. A step that cannot fit in ``gpu_memory_gib`` is refused: one line naming
its largest part and what to change (exit status 2). The estimates: ``memory_plan``.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from common.names import MANIFEST_NAME

from .backends import LaunchSetup, backend_lines, launch_setup
from .memory_plan import (
    DEFAULT_IMAGE_SIDE,
    GIB,
    PROMPT_TEXT_TOKENS,
    SFT_REPLY_TOKENS,
    ModelShape,
    Part,
    StageDisk,
    StepMemory,
    activation_parts,
    checkpoint_disk,
    checkpoints_kept,
    count,
    generation_parts,
    gib,
    gradient_part,
    image_tokens,
    model_config,
    model_shape,
    precision,
    processor_bounds,
    saves_of,
    size,
    static_parts,
)
from .run_arguments import STAGES, RecipeError, RunPlan, StagePlan

# what to change when a part does not fit, by part (the refusal names the largest)
REMEDIES = {
    "weights": "shard the weights with ZeRO-3 (recipes/accelerate/zero3.yaml) over more GPUs",
    "optimizer state": "shard it with DeepSpeed ZeRO (--accelerate_config "
    "recipes/accelerate/zero2.yaml) over more GPUs, or train a smaller trainable_scope",
    "gradients": "shard them with DeepSpeed ZeRO (--accelerate_config "
    "recipes/accelerate/zero2.yaml), or train a smaller trainable_scope",
    "DDP buckets": "use DeepSpeed ZeRO (--accelerate_config recipes/accelerate/zero2.yaml)",
    "reference model": "shard it with ZeRO-3 (recipes/accelerate/zero3.yaml), or set beta: 0",
    "vLLM": "lower vllm_gpu_memory_utilization, or run vLLM on other GPUs (vllm_mode: server)",
    "activations": "set activation_checkpointing: true, or lower per_device_train_batch_size "
    "and raise gradient_accumulation_steps",
    "vision activations": "set activation_checkpointing: true, or lower "
    "per_device_train_batch_size",
    "logits": "lower per_device_train_batch_size (raise gradient_accumulation_steps to keep "
    "the batch), or max_completion_length",
    "KV cache": "generate fewer sequences at once (GRPO: per_device_train_batch_size x "
    "steps_per_generation, or use_vllm: true; evaluation: eval.batch_size)",
    "prefill": "generate fewer sequences at once (GRPO: steps_per_generation; evaluation: "
    "eval.batch_size)",
    "gathered weights": "set ds3_gather_for_generation: false, or use_vllm: true",
    "gathered layers": "use more GPUs",
}


@dataclass
class PlannedStep:
    """One step the run would start: its name, command and what it runs."""

    step: str
    command: list[str]
    stage: str | None = None  # a training stage
    model: str | None = None  # the model an evaluation reads
    task: str | None = None


@dataclass
class StepPlan:
    planned: PlannedStep
    setup: LaunchSetup
    on_gpu: bool
    shape: ModelShape
    memory: StepMemory
    disk: StageDisk | None = None


# -- what the plan reads of the data -------------------------------------------------------------


@functools.cache
def dataset_facts(name: str, config: str, split: str) -> tuple[int | None, int | None]:
    """(rows, image side) of a local build's config and split, from its manifest and the first
    image of its first Parquet shard; (None, None) where there is no local build (a Hub id, not
    built yet). Read once per (dataset, config, split) and plan."""
    folder = Path(name)
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None, None
    info = (manifest.get("dataset_info") or {}).get(config) or {}
    splits = info.get("splits") or []  # the card's dataset_info: a list of {name, num_examples}
    rows = next((s.get("num_examples") for s in splits if s.get("name") == split), None)
    files = ((manifest.get("configs") or {}).get(config) or {}).get("data_files") or {}
    shards = files.get(split) or []
    return rows, _image_side(folder / shards[0]) if shards else None


def _image_side(shard: Path) -> int | None:
    """The longer side of the shard's first image: one row read, its PNG header only."""
    import pyarrow.parquet as pq

    from .data import image_size

    try:
        batch = next(pq.ParquetFile(shard).iter_batches(batch_size=1, columns=["image"]))
        return max(image_size(batch.to_pylist()[0]["image"]))
    except Exception:  # noqa: BLE001  (an unreadable shard: the default size is used)
        return None


# -- one step --------------------------------------------------------------------------------


def stage_steps(training, rows: int | None, setup: LaunchSetup, grpo: bool) -> int | None:
    """Optimizer steps of a stage: max_steps, or the epochs over ``rows`` when known."""
    if training.max_steps and training.max_steps > 0:
        return int(training.max_steps)
    if rows is None:
        return None
    per_step = training.per_device_train_batch_size * setup.processes
    per_step *= training.gradient_accumulation_steps
    items = rows * (training.num_generations if grpo else 1)
    return math.ceil(training.num_train_epochs * math.ceil(items / per_step))


def stage_plan(plan: RunPlan, planned: PlannedStep, shapes: dict) -> StepPlan:
    stage: StagePlan = plan.stages[planned.stage]
    t, args = stage.training, stage.args
    setup = launch_setup(plan.run.accelerate_config, plan.run.num_processes, t.deepspeed)
    shape = _shape(plan, shapes, stage.start_model, args.trainable_scope, stage)
    prec = precision(setup, stage.model_args.dtype, t.bf16, t.fp16)
    grpo, lora = stage.name == "grpo", args.trainable_scope == "lora"
    on_gpu = not t.use_cpu
    vllm = getattr(t, "use_vllm", False) and t.vllm_mode == "colocate"
    vllm_bytes = t.vllm_gpu_memory_utilization * plan.run.gpu_memory_gib * GIB if vllm else 0
    reference = grpo and t.beta != 0 and not lora
    resident = static_parts(shape, setup, prec, t.optim, reference, vllm_bytes)
    rows, side = dataset_facts(args.dataset_name, args.config_of(args.tasks[0]),
                               args.dataset_train_split)  # fmt: skip
    image = _image_tokens(plan, shape, stage, side)
    prompt = image + PROMPT_TEXT_TOKENS
    batch = t.per_device_train_batch_size
    if grpo:
        reply = t.max_completion_length
        tokens, logit_tokens, copies = prompt + reply, reply + 1, 3 * prec.compute
    else:
        reply = SFT_REPLY_TOKENS
        tokens = min(prompt + reply, t.max_length or prompt + reply)
        logit_tokens, copies = tokens, prec.compute + 8  # + the fp32 copy and log-softmax
    checkpointing = bool(t.activation_checkpointing or t.gradient_checkpointing)
    training = [gradient_part(shape, setup, prec)]
    training += activation_parts(shape, batch, tokens, image, logit_tokens, copies,
                                 prec.compute, checkpointing)  # fmt: skip
    if setup.zero_stage == 3:
        training.append(Part("gathered layers", 2 * shape.layer_parameters * prec.weights,
                             "ZeRO-3 gathers a layer and prefetches the next"))  # fmt: skip
    phases = {"training": training}
    if grpo and not getattr(t, "use_vllm", False):
        generation = generation_parts(shape, batch * t.steps_per_generation, prompt, reply,
                                      image, prec.compute)  # fmt: skip
        if setup.zero_stage == 3 and t.ds3_gather_for_generation:
            generation.append(Part("gathered weights", shape.total * prec.weights
                                   * (1 - 1 / setup.processes), "ZeRO-3 gathers the model "
                                   "to generate"))  # fmt: skip
        phases["generation"] = generation
    memory = StepMemory(planned.step, resident, phases)
    checkpoint, parts, final = checkpoint_disk(shape, setup, prec, t.optim, lora)
    saves = saves_of(t, stage_steps(t, rows, setup, grpo))
    kept = checkpoints_kept(saves, t.save_total_limit)
    disk = StageDisk(checkpoint, parts, final, kept, saves)
    return StepPlan(planned, setup, on_gpu, shape, memory, disk)


def eval_plan(plan: RunPlan, planned: PlannedStep, shapes: dict) -> StepPlan:
    """An evaluation: the model in bf16 on a GPU (fp32 on a CPU run), one generation batch."""
    last = plan.stages[STAGES[-1]]
    args, run, options = last.args, plan.run, plan.evaluations[planned.task]
    setup = launch_setup(run.accelerate_config, run.num_processes, None)
    shape = _shape(plan, shapes, planned.model, "full", last)
    on_gpu = not last.training.use_cpu
    weights = 2 if on_gpu else 4
    _, side = dataset_facts(args.dataset_name, options.config, options.split)
    image = _image_tokens(plan, shape, last, side)
    resident = [Part("weights", shape.total * weights, f"{count(shape.total)} x {weights} bytes")]
    generation = generation_parts(shape, options.batch_size, image + PROMPT_TEXT_TOKENS,
                                  options.max_new_tokens, image, weights)  # fmt: skip
    return StepPlan(
        planned,
        setup,
        on_gpu,
        shape,
        StepMemory(planned.step, resident, {"generation": generation}),
    )


def _image_tokens(plan: RunPlan, shape: ModelShape, stage: StagePlan, side: int | None) -> int:
    """Image tokens of one slice: the built data's size (else the synthetic build's, else a
    512 x 512 slice) under the stage's resize bounds (else its model's processor's)."""
    args, run = stage.args, plan.run
    if side is None:
        side = run.synthetic_size if run.synthetic_cases else DEFAULT_IMAGE_SIDE
    model = plan.stages[STAGES[0]].start_model or ""
    low, high = processor_bounds(model, _builds_tiny(plan, model))
    return image_tokens(shape, side, args.image_min_pixels or low, args.image_max_pixels or high)


def _builds_tiny(plan: RunPlan, model: str) -> bool:
    """The run builds the tiny model at ``model`` when it is missing (the demo)."""
    return plan.run.tiny_model_if_missing and model == plan.stages[STAGES[0]].start_model


def _shape(plan: RunPlan, shapes: dict, model: str | None, scope: str, stage: StagePlan):
    """The shape of the model a step reads: a later stage's (or a trained model's) is its
    starting model's, with the step's trainable scope."""
    trained = {s.training.output_dir for s in plan.stages.values()}
    if model is None or model in trained:
        model = plan.stages[STAGES[0]].start_model
    if not model:
        raise RecipeError("the plan needs model_name_or_path: set it in the recipe")
    key = (model, scope)
    if key not in shapes:
        config, source = model_config(model, stage.model_args.model_revision,
                                      _builds_tiny(plan, model))  # fmt: skip
        shapes[key] = model_shape(config, source, scope, stage.model_args)
    return shapes[key]


# -- the report ----------------------------------------------------------------------------------


def memory_lines(step: StepPlan, limit_gib: float) -> list[str]:
    memory = step.memory
    where = "GPU" if step.on_gpu else "process (host memory: a CPU run)"
    lines = [f"  memory per {where}:"]
    every = [p.name for phase in [memory.resident, *memory.phases.values()] for p in phase]
    width = max(len(n) for n in [*every, *(f"{phase} phase" for phase in memory.phases)])
    for part in memory.resident:
        lines.append(f"    {part.name:<{width + 2}}{size(part.bytes):>10}  {part.note}")
    for phase, parts in memory.phases.items():
        lines.append(f"    {phase + ' phase':<{width + 2}}{size(memory.phase_bytes(phase)):>10}")
        for part in parts:
            lines.append(f"      {part.name:<{width}}{size(part.bytes):>10}  {part.note}")
    verdict = ""
    if step.on_gpu:
        fits = memory.peak <= limit_gib * GIB
        verdict = f" of {limit_gib:g} GiB: " + ("fits" if fits else "DOES NOT FIT")
    lines.append(f"    {'peak':<{width + 2}}{size(memory.peak):>10}  ({memory.peak_phase} "
                 f"phase){verdict}")  # fmt: skip
    return lines


def disk_lines(step: StepPlan, free: int | None) -> list[str]:
    disk = step.disk
    if disk is None:
        return []
    parts = ", ".join(f"{p.name} {size(p.bytes, False)}" for p in disk.parts)
    line = f"  disk: one checkpoint {size(disk.checkpoint, False)} ({parts}); "
    if disk.saves == 0:
        line += f"no checkpoints; the final model {size(disk.final, False)}"
    elif disk.peak is None:
        line += ("no save_total_limit and the number of saves is unknown before the data is "
                 f"read: each save adds {size(disk.checkpoint, False)}")  # fmt: skip
    else:
        saves = "? (the data is not read)" if disk.saves is None else disk.saves
        line += (f"saves {saves}, at most {disk.kept} at once: peak {size(disk.peak, False)} "
                 f"with the final model ({size(disk.final, False)})")  # fmt: skip
    if free is not None and disk.peak is not None and disk.peak > free:
        line += f"; MORE than the {size(free, False)} free where output_dir lies"
    return [line]


def free_disk(path: str) -> int | None:
    folder = Path(path).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def step_lines(step: StepPlan, plan: RunPlan, free: int | None) -> list[str]:
    shape, setup = step.shape, step.setup
    how = setup.description if step.planned.stage else "data parallel, one model per process"
    line = f"  {setup.processes} process(es), {how}; model shape from {shape.source}"
    if step.planned.stage:
        line += f"; trainable {count(shape.trainable)} of {count(shape.total)} parameters"
    return [f"{step.planned.step}: {' '.join(step.planned.command)}", line,
            *memory_lines(step, plan.run.gpu_memory_gib), *disk_lines(step, free)]  # fmt: skip


def make_plan(plan: RunPlan, steps: list[PlannedStep]) -> list[StepPlan]:
    shapes: dict = {}
    dataset_facts.cache_clear()  # read once per plan, afresh for the next
    return [stage_plan(plan, s, shapes) if s.stage else eval_plan(plan, s, shapes) for s in steps]


def refusal(step: StepPlan, limit_gib: float) -> str | None:
    """The one-line refusal of a step that cannot fit on its GPU, or None."""
    if not step.on_gpu or step.memory.peak <= limit_gib * GIB:
        return None
    largest = step.memory.largest()
    return (
        f"{step.planned.step} needs about {gib(step.memory.peak)} GiB per GPU, more than "
        f"gpu_memory_gib {limit_gib:g}; its largest part is {largest.name} "
        f"({gib(largest.bytes)} GiB): {REMEDIES.get(largest.name, 'use more GPUs')}"
    )


def dry_run(plan: RunPlan, steps: list[PlannedStep]) -> list[StepPlan]:
    """Print the plan; raise RecipeError (one line) when a step cannot fit."""
    planned = make_plan(plan, steps)
    free = free_disk(plan.run.output_dir)
    print(f"plan of {plan.recipe_path} (dry run: no weights loaded, no GPU used)")
    print("backends: " + "; ".join(backend_lines()))
    for step in planned:
        print("\n".join(step_lines(step, plan, free)))
    problems = [r for r in (refusal(s, plan.run.gpu_memory_gib) for s in planned) if r]
    if problems:
        raise RecipeError(problems[0])
    print("every step fits" + (f" in {plan.run.gpu_memory_gib:g} GiB per GPU" if any(
        s.on_gpu for s in planned) else " (a CPU run: no GPU memory to check)"))  # fmt: skip
    return planned


__all__ = ["REMEDIES", "PlannedStep", "StepPlan", "dry_run", "make_plan", "refusal"]
