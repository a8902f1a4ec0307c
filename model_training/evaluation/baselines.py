r"""Evaluate the paper's Table 1 baselines in one command and render Table 1.

    python -m model_training.evaluation.baselines \
        --baselines recipes/paper-tables/table1-baselines.yaml --dataset ORG/CT-RATE-VQA \
        --out outputs/table1 [--models NAME,NAME] [--trust-remote-code] [--limit N] \
        [--batch-size B] [--max-new-tokens T] [--repetition-penalty P] [--backend hf|vllm] ...

Options: the fields of ``BaselinesArguments`` (``--help`` lists them). The baselines file lists
the models (``models:``, one entry each: ``name``, ``hub_id`` or ``path``, optional ``revision``,
``subfolder``, ``trust_remote_code``, ``size``, ``paper: {think, no-think}``, ``note``; see
``recipes/paper-tables/table1-baselines.yaml``).

Each selected model is evaluated in both prompt modes by ``python -m
model_training.evaluation.evaluate`` (one process per model, so each model's memory is freed),
into ``OUT/<name>/``, every model decoded alike (the evaluator's greedy decoding, repetition
penalty ``--repetition-penalty``, not each checkpoint's own generation_config). Resumable: a
model whose ``results.json`` is complete (same dataset, config, split, prompts, decoding and
number of rows) is not run again, and an interrupted model resumes from its predictions.
Skipped, with the reason printed: an entry without a checkpoint (``hub_id: null``) and an entry
that needs remote code unless ``--trust-remote-code``.
A model that cannot be read or evaluated is reported and the others still run (exit status 1).

Writes ``OUT/paper_figures.json`` (the paper's figures: ``{name: {"think": x, "no-think": y}}``,
accuracy in %, null where the paper gives none), ``OUT/baselines_status.json`` (per model:
status, reason, results file) and Table 1 in ``OUT/table1/`` with the leaderboard
(``build_leaderboard``). Each ``results.json`` gets the entry's name and size
(``display_name``, ``model_size``) for the table's rows. From Python:
``run(BaselinesArguments(...))`` returns the exit status.

Bad input (a missing or malformed baselines file, an unknown name in ``--models``, a bad option,
an ``--out`` that is a file, a dataset that cannot be read or whose build is incomplete) is one
line on stderr and exit status 2, before anything runs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from common.cli_options import parse_options
from common.errors import UserError, report, user_errors
from common.hub_ids import is_hub_id
from common.names import PROMPT_MODES
from common.results_schema import RESULTS_FILE, read_results

from .. import prompts
from . import generation, progress
from . import options as eval_options
from .evaluate import load_split
from .leaderboard import LeaderboardArguments, build_leaderboard
from .options import evaluator_process
from .preflight import check_output_folder

PROG = "python -m model_training.evaluation.baselines"
PAPER_FIGURES_FILE = "paper_figures.json"
STATUS_FILE = "baselines_status.json"
# what --out may hold: the command's own files and folders (one per model, whose evaluator
# refuses a file it did not write; Table 1's); anything else there is refused, never overwritten
BASELINES_FILES = (PAPER_FIGURES_FILE, STATUS_FILE, "*/")
TABLE_FOLDER = "table1"
TABLE_LAYOUT = "table1"
ENTRY_KEYS = (
    "name",
    "hub_id",
    "path",
    "revision",
    "subfolder",
    "needs_subfolder",
    "trust_remote_code",
    "size",
    "paper",
    "note",
)
HUB_ONLY_KEYS = ("revision", "subfolder", "needs_subfolder")


class BaselinesError(UserError):
    """Bad input to the baselines command; the message is one line for the user."""


@dataclass
class BaselinesArguments:
    """The options of ``python -m model_training.evaluation.baselines`` (one field each)."""

    baselines: str = field(metadata={"help": "baselines YAML (models, Hub ids, paper figures)"})
    dataset: str = field(metadata={"help": "built CT-RATE-VQA folder or Hub dataset id"})
    out: str = field(metadata={"help": "output folder: one sub-folder per model, table1/"})
    models: str | None = field(
        default=None, metadata={"help": "comma-separated entry names to run (default: all)"}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "also run entries marked trust_remote_code (their repos' own code)"},
    )
    limit: int | None = field(
        default=None, metadata={"help": "evaluate only the first N rows (N >= 1)"}
    )
    config: str = field(default=eval_options.DEFAULT_CONFIG, metadata={"help": "dataset config"})
    split: str = field(default=eval_options.DEFAULT_SPLIT, metadata={"help": "dataset split"})
    revision: str | None = field(
        default=None, metadata={"help": "dataset revision (a Hub dataset id only)"}
    )
    allow_incomplete_build: bool = field(
        default=False,
        metadata={
            "help": "evaluate on a built folder whose build_manifest.json says the build did "
            "not finish (refused by default)"
        },
    )
    batch_size: int = field(
        default=eval_options.DEFAULT_BATCH_SIZE,
        metadata={"help": "rows per generate call (vllm: per hand-over)"},
    )
    max_new_tokens: int = field(
        default=eval_options.DEFAULT_MAX_NEW_TOKENS, metadata={"help": "reply tokens per row"}
    )
    repetition_penalty: float = field(
        default=eval_options.DEFAULT_REPETITION_PENALTY,
        metadata={"help": "greedy decoding's repetition penalty for every model (> 0; 1.0: none)"},
    )
    backend: Literal["hf", "vllm"] = field(
        default=eval_options.DEFAULT_BACKEND,
        metadata={"help": "hf: transformers generate; vllm: vLLM (GPU machines)"},
    )
    tensor_parallel_size: int = field(
        default=eval_options.DEFAULT_TENSOR_PARALLEL_SIZE, metadata={"help": "vllm: GPUs per model"}
    )
    max_model_len: int = field(
        default=eval_options.DEFAULT_MAX_MODEL_LEN,
        metadata={"help": "vllm: prompt and reply tokens"},
    )
    gpu_memory_utilization: float = field(
        default=eval_options.DEFAULT_GPU_MEMORY_UTILIZATION,
        metadata={"help": "vllm: share of GPU memory for weights and KV cache"},
    )
    progress: bool = field(default=True, metadata={"help": "progress bars (--no-progress: none)"})

    def __post_init__(self) -> None:
        self.evaluate_arguments("-", "-")  # the evaluator's own checks (EvaluationError)

    def evaluate_arguments(
        self, model: str, output_dir: str, trust_remote_code: bool = False
    ) -> eval_options.EvaluateArguments:
        """The evaluator's options for one model (both prompt modes); ``trust_remote_code``:
        the entry's own (this command's field only allows such entries to run)."""
        shared = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(eval_options.EvaluateArguments)
            if hasattr(self, f.name) and f.name not in ("trust_remote_code",)
        }
        return eval_options.EvaluateArguments(
            **shared, model=model, output_dir=output_dir, mode="both",
            trust_remote_code=trust_remote_code,
        )  # fmt: skip

    @property
    def selected(self) -> list[str] | None:
        if self.models is None:
            return None
        return [name.strip() for name in self.models.split(",") if name.strip()]


@dataclass(frozen=True)
class Baseline:
    """One entry of the baselines file."""

    name: str
    hub_id: str | None = None
    path: str | None = None
    revision: str | None = None
    subfolder: str | None = None
    needs_subfolder: bool = False  # the repo root is no checkpoint: skipped until subfolder is set
    trust_remote_code: bool = False
    size: str | None = None
    paper: dict[str, float | None] = field(default_factory=dict)
    note: str | None = None

    @property
    def folder(self) -> str:
        """The entry's output sub-folder name (its name, lower case, safe characters)."""
        return re.sub(r"[^a-z0-9._-]+", "-", self.name.lower()).strip("-.") or "model"

    @property
    def source(self) -> str | None:
        return self.path if self.path is not None else self.hub_id


# -- the baselines file ---------------------------------------------------------------------


def read_baselines(path: str | Path) -> list[Baseline]:
    """The entries of a baselines YAML, checked; a BaselinesError names the file, the entry and
    what to change."""
    path = Path(path)
    if not path.is_file():
        raise BaselinesError(
            f"--baselines {path}: no such file; pass a baselines YAML such as "
            "recipes/paper-tables/table1-baselines.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BaselinesError(f"{path} is not valid YAML{where}; correct the file") from None
    if not isinstance(data, dict) or set(data) != {"models"}:
        raise BaselinesError(
            f"{path} must hold one key, models: a list of entries (name, hub_id or path, "
            "paper...); see recipes/paper-tables/table1-baselines.yaml"
        )
    entries = data["models"]
    if not isinstance(entries, list) or not entries:
        raise BaselinesError(f"{path}: models must be a non-empty list of entries")
    baselines = [_entry(path, index, entry) for index, entry in enumerate(entries)]
    for attribute in ("name", "folder"):
        seen: dict[str, str] = {}
        for baseline in baselines:
            key = getattr(baseline, attribute)
            if key in seen:
                raise BaselinesError(
                    f"{path}: entries {seen[key]!r} and {baseline.name!r} have the same "
                    f"{'name' if attribute == 'name' else 'output folder'} ({key!r}); rename one"
                )
            seen[key] = baseline.name
    return baselines


def _entry(path: Path, index: int, entry: Any) -> Baseline:
    where = f"{path}: models[{index}]"
    if not isinstance(entry, dict):
        raise BaselinesError(f"{where} is not a mapping; give name, hub_id or path, paper...")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BaselinesError(f"{where} has no name; give each entry a name (the table's row)")
    where = f"{path}: models[{index}] ({name})"
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise BaselinesError(
            f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(ENTRY_KEYS)}"
        )
    for key in ("hub_id", "path", "revision", "subfolder", "note"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise BaselinesError(f"{where}: {key} must be a string or null")
    if entry.get("size") is not None and not isinstance(entry["size"], str | int | float):
        raise BaselinesError(f"{where}: size must be a string such as 7B, or null")
    if entry.get("hub_id") is not None and entry.get("path") is not None:
        raise BaselinesError(f"{where} has both hub_id and path; keep one")
    if entry.get("hub_id") is not None and not is_hub_id(entry["hub_id"]):
        raise BaselinesError(f"{where}: hub_id {entry['hub_id']!r} is not a Hub id (ORG/NAME)")
    for key in HUB_ONLY_KEYS:
        if entry.get(key) is not None and entry.get("hub_id") is None:
            raise BaselinesError(f"{where}: {key} applies to a hub_id only; drop it")
    trust = entry.get("trust_remote_code", False)
    needs_subfolder = entry.get("needs_subfolder", False)
    for key, value in (("trust_remote_code", trust), ("needs_subfolder", needs_subfolder)):
        if not isinstance(value, bool):
            raise BaselinesError(f"{where}: {key} must be true or false")
    paper = entry.get("paper") or {}
    if not isinstance(paper, dict) or set(paper) - set(PROMPT_MODES):
        raise BaselinesError(
            f"{where}: paper must map {' and '.join(PROMPT_MODES)} to accuracies in %"
        )
    for mode, value in paper.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (numeric and 0 <= value <= 100):
            raise BaselinesError(
                f"{where}: paper {mode} must be an accuracy in % (0-100) or null, not {value!r}"
            )
    return Baseline(
        name=name.strip(),
        hub_id=entry.get("hub_id"),
        path=entry.get("path"),
        revision=entry.get("revision"),
        subfolder=entry.get("subfolder"),
        needs_subfolder=needs_subfolder,
        trust_remote_code=trust,
        size=None if entry.get("size") is None else str(entry["size"]),
        paper={mode: paper.get(mode) for mode in PROMPT_MODES},
        note=entry.get("note"),
    )


def select(baselines: list[Baseline], names: list[str] | None, source: str) -> list[Baseline]:
    """The entries named in ``--models`` (all when None), in the file's order."""
    if names is None:
        return baselines
    known = [b.name for b in baselines]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise BaselinesError(
            f"--models: {', '.join(map(repr, unknown)) or 'no name given'} not in {source}; "
            f"its models are {', '.join(map(repr, known))}"
        )
    return [b for b in baselines if b.name in names]


def paper_figures(baselines: list[Baseline]) -> dict[str, dict[str, float | None]]:
    """``{name: {"think": x, "no-think": y}}``: the paper's accuracies in % (None: not given)."""
    return {b.name: {mode: b.paper.get(mode) for mode in PROMPT_MODES} for b in baselines}


# -- running --------------------------------------------------------------------------------


def skip_reason(baseline: Baseline, trust_remote_code: bool) -> str | None:
    """Why an entry is not evaluated (None: it is)."""
    note = f" ({baseline.note})" if baseline.note else ""
    if baseline.source is None:
        return f"no hub_id or path: the table shows the paper's figures only{note}"
    if baseline.needs_subfolder and baseline.subfolder is None:
        return f"the repo root is no checkpoint: set subfolder in the baselines file{note}"
    if baseline.trust_remote_code and not trust_remote_code:
        return f"needs remote code: pass --trust-remote-code to run the repo's own code{note}"
    return None


def resolve(baseline: Baseline) -> str:
    """The model argument for the evaluator: the path, the Hub id, or (with a revision or a
    subfolder, which the evaluator takes no option for) the downloaded checkpoint folder."""
    if baseline.path is not None or (baseline.revision is None and baseline.subfolder is None):
        return str(baseline.source)
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            baseline.hub_id,
            revision=baseline.revision,
            allow_patterns=[f"{baseline.subfolder}/*"] if baseline.subfolder else None,
        )
    except Exception as err:  # noqa: BLE001  (offline, gated, missing revision: reported)
        raise eval_options.EvaluationError(
            f"{baseline.hub_id} (revision {baseline.revision}) could not be downloaded "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    return str(Path(folder, baseline.subfolder or ""))


def _same_path(a: object, b: object) -> bool:
    def norm(value: object) -> str:
        text = str(value)
        return str(Path(text).resolve()) if Path(text).exists() else text

    return norm(a) == norm(b)


def is_complete(folder: Path, model: str, options: BaselinesArguments, rows: int) -> bool:
    """Whether ``folder`` holds a finished evaluation of ``model`` with these options."""
    try:
        results = read_results(folder / RESULTS_FILE)
        settings = json.loads((folder / progress.SETTINGS_FILE).read_text())
    except (OSError, ValueError):  # ResultsError: a ValueError (UserError)
        return False
    modes = results.get("modes") if isinstance(results, dict) else None
    return (  # the model and dataset as eval_settings.json names them (results.json: no paths)
        isinstance(modes, dict)
        and isinstance(settings, dict)
        and _same_path(settings.get("model"), model)
        and _same_path(settings.get("dataset"), options.dataset)
        and (results.get("config"), results.get("split")) == (options.config, options.split)
        and (settings.get("config"), settings.get("split")) == (options.config, options.split)
        and settings.get("max_new_tokens") == options.max_new_tokens
        and settings.get("repetition_penalty") == options.repetition_penalty
        and settings.get("prompts") == prompts.record()
        and all(isinstance(modes.get(m), dict) and modes[m].get("n") == rows for m in PROMPT_MODES)
    )


def label_results(folder: Path, baseline: Baseline) -> Path:
    """Add the entry's name and size to its ``results.json`` (the table's row label)."""
    path = folder / RESULTS_FILE
    results = json.loads(path.read_text())
    labels = {"display_name": baseline.name}
    if baseline.size is not None:
        labels["model_size"] = baseline.size
    if any(results.get(k) != v for k, v in labels.items()):
        path.write_text(json.dumps({**results, **labels}, indent=1))
    return path


def evaluate_command(options: BaselinesArguments, model: str, folder: Path, trust: bool) -> list:
    """The evaluator's process for one model (its options, by the one dataclass-to-argv
    helper)."""
    args = options.evaluate_arguments(model, str(folder), trust)
    return [sys.executable, *evaluator_process(args)]


def render_table(result_files: list[Path], out: Path, figures_file: Path) -> int:
    """Table 1 by the leaderboard, printed; 0, or 2 when the leaderboard refuses the results
    (its message is printed; the evaluations stay)."""
    board = LeaderboardArguments(
        output=str(out / TABLE_FOLDER), results=list(map(str, result_files)),
        layout=TABLE_LAYOUT, paper_figures=str(figures_file),
    )  # fmt: skip
    try:
        build_leaderboard(board)
    except UserError as err:
        return report(err)
    table = Path(board.output) / f"{TABLE_LAYOUT}.md"
    print(f"Table 1: {table}\n{table.read_text()}", flush=True)
    return 0


def run(options: BaselinesArguments) -> int:
    """Evaluate the selected baselines and render Table 1; the exit status."""
    check_output_folder(options.out, "--out", BaselinesError, BASELINES_FILES)
    chosen = select(read_baselines(options.baselines), options.selected, options.baselines)
    reasons = {b.name: skip_reason(b, options.trust_remote_code) for b in chosen}
    runnable = [b for b in chosen if reasons[b.name] is None]
    rows = len(load_split(options.evaluate_arguments("-", "-"))) if runnable else 0

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    figures_file = out / PAPER_FIGURES_FILE
    figures_file.write_text(json.dumps(paper_figures(chosen), indent=1) + "\n")
    status: dict[str, dict] = {}
    for baseline in chosen:
        if reasons[baseline.name] is not None:
            print(f"{baseline.name}: skipped: {reasons[baseline.name]}", flush=True)
            status[baseline.name] = {"status": "skipped", "reason": reasons[baseline.name]}

    models: dict[str, str] = {}  # preflight: every model is readable before any runs
    for baseline in runnable:
        try:
            models[baseline.name] = resolve(baseline)
            generation.check_model(models[baseline.name], baseline.trust_remote_code)
        except eval_options.EvaluationError as err:
            print(f"{baseline.name}: not run: {err}", flush=True)
            status[baseline.name] = {"status": "failed", "reason": str(err)}

    results: list[Path] = []
    for baseline in runnable:
        if baseline.name not in models or baseline.name in status:
            continue
        folder, model = out / baseline.folder, models[baseline.name]
        entry = {"model": model, "results": str(folder / RESULTS_FILE)}
        if is_complete(folder, model, options, rows):
            print(f"{baseline.name}: already evaluated ({folder / 'results.json'})", flush=True)
        else:
            command = evaluate_command(options, model, folder, baseline.trust_remote_code)
            print(f"{baseline.name}: $ {' '.join(command[1:])}", flush=True)
            code = subprocess.run(command, check=False).returncode
            if code != 0 or not is_complete(folder, model, options, rows):
                reason = f"the evaluator exited with status {code} (its message is above)"
                print(f"{baseline.name}: failed: {reason}", flush=True)
                status[baseline.name] = {**entry, "status": "failed", "reason": reason}
                continue
        results.append(label_results(folder, baseline))
        status[baseline.name] = {**entry, "status": "evaluated", "reason": None}

    (out / STATUS_FILE).write_text(json.dumps(status, indent=1) + "\n")
    table_code = render_table(results, out, figures_file) if results else 0
    failed = [name for name, s in status.items() if s["status"] == "failed"]
    if failed:
        print(f"not evaluated: {', '.join(failed)} (see {out / STATUS_FILE})", file=sys.stderr)
    return 1 if failed or table_code != 0 else 0


@user_errors
def main(argv: list[str] | None = None) -> int:
    (options,) = parse_options(BaselinesArguments, argv, PROG, __doc__)
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
