"""The evaluator's progress: which (mode, row) replies are still missing, how they are cut into
batches and shared among processes, and the progress files every finished batch is appended to
(so that a killed run resumes, whatever its process count).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common.results_schema import IMAGE_ABLATION, NO_ABLATION

from .. import prompts
from .image_ablation import ablation_record
from .options import DEFAULT_BACKEND, EvaluateArguments, EvaluationError

PROGRESS_FILE = "predictions.jsonl"  # one process
RANK_PROGRESS_FILE = "predictions.rank{rank}-of-{world}.jsonl"  # process rank of world (> 1)
SETTINGS_FILE = "eval_settings.json"

Batch = tuple[str, list[int]]  # (mode, dataset row indices)


def plan_batches(
    ids: list[str], modes: tuple[str, ...], done: dict[tuple, dict], batch_size: int
) -> list[Batch]:
    """The batches one process would generate: per mode, the missing rows in dataset order."""
    batches = []
    for mode in modes:
        missing = [i for i, id_ in enumerate(ids) if (mode, id_) not in done]
        batches += [(mode, missing[s : s + batch_size]) for s in range(0, len(missing), batch_size)]
    return batches


def shard(batches: list[Batch], rank: int, world: int) -> list[Batch]:
    """Process ``rank``'s share of ``world``: whole batches rank, rank + world, ... (a batch
    keeps the rows, and so the padding, it has in a one-process run)."""
    return batches[rank::world]


def source_name(name: str) -> str:
    """A model or dataset as recorded: a local path normalised (``./a/b/`` -> ``a/b``), a Hub
    id as given."""
    return os.path.normpath(name) if Path(name).exists() else name


def _same_source(settings: dict) -> dict:
    """``settings`` with local model and dataset paths resolved, for comparing two runs'."""
    return {
        **settings,
        **{k: str(Path(settings[k]).resolve()) for k in ("model", "dataset")
           if k in settings and Path(settings[k]).exists()},
    }  # fmt: skip


def run_settings(options: EvaluateArguments, task: str) -> dict:
    """What makes two runs' predictions the same (``eval_settings.json``): model, data,
    decoding, prompts (and a backend other than hf, an image ablation other than none)."""
    settings = {
        "model": source_name(options.model),
        "dataset": source_name(options.dataset),
        "config": options.config,
        "split": options.split,
        "max_new_tokens": options.max_new_tokens,
        "repetition_penalty": options.repetition_penalty,
        "prompts": prompts.record(task),
    }
    if options.backend != DEFAULT_BACKEND:  # folders of hf runs stay resumable as they were
        settings["backend"] = options.backend
    if options.image_ablation != NO_ABLATION:  # real-image folders stay resumable, too
        settings[IMAGE_ABLATION] = ablation_record(options.image_ablation, options.ablation_seed)
    return settings


def progress_file(output_dir: Path, rank: int = 0, world: int = 1) -> Path:
    """The progress file that process ``rank`` of ``world`` appends to."""
    name = PROGRESS_FILE if world == 1 else RANK_PROGRESS_FILE.format(rank=rank, world=world)
    return output_dir / name


def progress_files(output_dir: Path) -> list[Path]:
    """Every progress file in ``output_dir``, of any process count."""
    pattern = RANK_PROGRESS_FILE.format(rank="*", world="*")
    return sorted(p for p in [output_dir / PROGRESS_FILE, *output_dir.glob(pattern)] if p.is_file())


def read_progress(output_dir: Path) -> dict[tuple, dict]:
    """The prediction rows in ``output_dir``'s progress files, by (mode, id)."""
    done = {}
    for path in progress_files(output_dir):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut
                continue
            done[(row["mode"], row["id"])] = row
    return done


def check_complete(done: dict[tuple, dict], modes, ids: list[str], output_dir: Path) -> None:
    """Refuse to score while a (mode, row) prediction is missing from the progress files."""
    lost = sum((mode, id_) not in done for mode in modes for id_ in ids)
    if lost:
        raise EvaluationError(
            f"{lost} predictions are missing from the progress files in {output_dir}: "
            "processes on several machines need --output-dir on a shared file system"
        )


def prepare_output(output_dir: Path, settings: dict, overwrite: bool) -> None:
    """Create ``output_dir``, refuse predictions of other settings (or delete them with
    ``overwrite``) and record the settings. One process does this while the others wait."""
    output_dir.mkdir(parents=True, exist_ok=True)
    settings_file = output_dir / SETTINGS_FILE
    if overwrite:
        for path in progress_files(output_dir):
            path.unlink()
    elif settings_file.is_file() and progress_files(output_dir):
        earlier, now = _same_source(json.loads(settings_file.read_text())), _same_source(settings)
        changed = sorted(k for k in {*earlier, *now} if earlier.get(k) != now.get(k))
        if changed:  # e.g. a run before --repetition-penalty: the checkpoint's decoding
            raise EvaluationError(
                f"{output_dir} holds predictions of another evaluation ({settings_file} differs "
                f"in {', '.join(changed)}); use another --output-dir, or --overwrite to discard "
                "them"
            )
    settings_file.write_text(json.dumps(settings, indent=1))


def _drop_cut_line(path: Path) -> None:
    """Cut a killed run's unfinished last line, so that appended rows start on a line."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            os.truncate(path, data.rfind(b"\n") + 1)


@contextmanager
def progress_sink(path: Path) -> Iterator[Callable[[list[dict]], None]]:
    """A function that appends finished prediction rows to ``path`` (flushed per batch)."""
    _drop_cut_line(path)
    with path.open("a") as sink:

        def append(rows: list[dict]) -> None:
            for row in rows:
                sink.write(json.dumps(row) + "\n")
            sink.flush()

        yield append
