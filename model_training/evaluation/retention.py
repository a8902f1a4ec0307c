r"""General-VQA retention (the paper's Table 2): ChartQA relaxed accuracy and TextVQA VQA accuracy
of a checkpoint, and their sample-weighted average.

    python -m model_training.evaluation.retention --model PATH_OR_REPO \
        --benchmark chartqa|textvqa|both \
        [--chartqa-dataset ID_OR_PATH] [--textvqa-dataset ID_OR_PATH] \
        [--split S | --chartqa-split S --textvqa-split S] [--limit N] [--batch-size B] \
        --output-dir DIR

Options: the fields of ``RetentionArguments`` (``--help`` lists them), parsed by transformers'
``HfArgumentParser``; ``--batch-size`` and ``--batch_size`` are the same option. A user error (a
model or dataset that is not there, a missing split or column, an output folder that is a
file) exits with status 2 and one line, before the model is loaded. No option is accepted and
ignored: ``--split`` with a benchmark's own split, or an option of a benchmark that
``--benchmark`` does not run, is refused.

Writes ``DIR/retention.json`` and ``DIR/retention_predictions.parquet`` (one row per question:
benchmark, index, question, reply, the scored answer, the gold answers and the score).
Batched generation with left padding, decoded as the evaluator decodes (``decoding.Decoding``:
greedy, repetition penalty ``--repetition-penalty``, default 1.0, whatever the checkpoint's
generation_config says; ``retention.json`` records it under ``decoding``). A dataset is a Hub id
or a local folder that ``datasets.load_dataset(path, split=...)`` reads (for example Parquet
files named ``<split>-00000-of-00001.parquet``); the column names are options because Hub
copies differ.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
from tqdm.auto import tqdm

from common.cli_options import parse_options
from common.errors import UserError, user_errors
from common.hub_ids import is_hub_id

from . import vqa_metrics
from .decoding import DEFAULT_REPETITION_PENALTY, Decoding, DecodingError
from .generation import check_model, greedy_replies, load_model
from .options import DEFAULT_BATCH_SIZE, EvaluationError
from .preflight import check_output_folder
from .results_header import source_name

# lmms-eval's short-answer post prompt (its chartqa and textvqa tasks, from LLaVA-1.5), ours to
# use for both benchmarks.
SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."
DEFAULT_MAX_NEW_TOKENS = 32  # a word or a phrase (lmms-eval: 16), with room for <answer> tags
BENCHMARKS = ("chartqa", "textvqa")
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
RETENTION_FILE = "retention.json"  # the report
RETENTION_PREDICTIONS = "retention_predictions.parquet"  # one row per question


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark's data is and which columns hold what."""

    name: str  # "chartqa" or "textvqa"
    dataset: str  # Hub id or local folder
    split: str
    image_column: str
    question_column: str
    answer_column: str  # ChartQA: gold label(s); TextVQA: the 10 human answers


DEFAULTS = {
    # HuggingFaceM4/ChartQA: image, query, label (a list holding one string), human_or_machine
    "chartqa": Benchmark("chartqa", "HuggingFaceM4/ChartQA", "test", "image", "query", "label"),
    # lmms-lab/textvqa: image, question, answers (10 strings), question_id, ocr_tokens, ...
    "textvqa": Benchmark(
        "textvqa", "lmms-lab/textvqa", "validation", "image", "question", "answers"
    ),
}


class RetentionError(UserError):
    """A retention run that cannot go on; the message says what to change."""


def _column(role: str, bench: Benchmark) -> str:
    return field(
        default=getattr(bench, f"{role}_column"),
        metadata={"help": f"{bench.name}: the {role} column"},
    )


@dataclass
class RetentionArguments:
    """The options of ``python -m model_training.evaluation.retention`` (one field, one option)."""

    model: str = field(metadata={"help": "checkpoint folder or Hub id of an image-text model"})
    output_dir: str = field(
        metadata={"help": "folder for retention.json and retention_predictions.parquet"}
    )
    benchmark: Literal["chartqa", "textvqa", "both"] = field(
        default="both", metadata={"help": "the benchmark(s) to run"}
    )
    split: str | None = field(
        default=None,
        metadata={
            "help": "split of every chosen benchmark (None: each its own, --chartqa-split / "
            "--textvqa-split; give one or the others)"
        },
    )
    chartqa_dataset: str = field(
        default=DEFAULTS["chartqa"].dataset, metadata={"help": "ChartQA: Hub id or local folder"}
    )
    chartqa_split: str | None = field(
        default=None,
        metadata={"help": f"ChartQA: split (None: {DEFAULTS['chartqa'].split}, or --split)"},
    )
    chartqa_image_column: str = _column("image", DEFAULTS["chartqa"])
    chartqa_question_column: str = _column("question", DEFAULTS["chartqa"])
    chartqa_answer_column: str = _column("answer", DEFAULTS["chartqa"])
    textvqa_dataset: str = field(
        default=DEFAULTS["textvqa"].dataset, metadata={"help": "TextVQA: Hub id or local folder"}
    )
    textvqa_split: str | None = field(
        default=None,
        metadata={
            "help": f"TextVQA: split (None: {DEFAULTS['textvqa'].split}, or --split; test "
            "answers are hidden)"
        },
    )
    textvqa_image_column: str = _column("image", DEFAULTS["textvqa"])
    textvqa_question_column: str = _column("question", DEFAULTS["textvqa"])
    textvqa_answer_column: str = _column("answer", DEFAULTS["textvqa"])
    limit: int | None = field(default=None, metadata={"help": "first N questions of each"})
    batch_size: int = field(
        default=DEFAULT_BATCH_SIZE, metadata={"help": "questions per generate call"}
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "reply tokens per question"}
    )
    repetition_penalty: float = field(
        default=DEFAULT_REPETITION_PENALTY,
        metadata={"help": "greedy decoding's repetition penalty (> 0; 1.0: none)"},
    )
    progress: bool = field(default=True, metadata={"help": "progress bar (--no-progress: none)"})

    def __post_init__(self) -> None:
        for name in ("limit", "batch_size", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RetentionError(f"--{name}={value}: give a positive number")
        try:
            self.decoding  # noqa: B018  (checks --repetition-penalty)
        except DecodingError as err:
            raise RetentionError(str(err)) from None
        self._check_pairs()

    def _check_pairs(self) -> None:
        """Refuse an option that would be accepted and ignored: a benchmark's split beside
        --split (which sets every chosen benchmark's), or an option of a benchmark that
        --benchmark does not run."""
        chosen = self.names()
        for name in chosen:
            own = getattr(self, f"{name}_split")
            if self.split is not None and own is not None:
                raise RetentionError(
                    f"--split {self.split} sets the split of every chosen benchmark, and "
                    f"--{name}-split {own} sets {name}'s: give one of them"
                )
        for f in dataclasses.fields(self):
            owner = f.name.split("_", 1)[0]
            if owner in BENCHMARKS and owner not in chosen and getattr(self, f.name) != f.default:
                flag = f"--{f.name.replace('_', '-')}"
                raise RetentionError(
                    f"{flag} applies to {owner}, which --benchmark {self.benchmark} does not "
                    f"run: drop {flag}, or pass --benchmark {owner} or both"
                )

    def names(self) -> tuple[str, ...]:
        """The chosen benchmarks' names."""
        return BENCHMARKS if self.benchmark == "both" else (self.benchmark,)

    @property
    def decoding(self) -> Decoding:
        return Decoding(self.max_new_tokens, self.repetition_penalty)

    def benchmarks(self) -> list[Benchmark]:
        """The chosen benchmarks, with their datasets, splits and columns."""
        return [
            Benchmark(
                name,
                getattr(self, f"{name}_dataset"),
                self.split or getattr(self, f"{name}_split") or DEFAULTS[name].split,
                *(
                    getattr(self, f"{name}_{role}_column")
                    for role in ("image", "question", "answer")
                ),
            )
            for name in self.names()
        ]


def scored_text(reply: str) -> str:
    """The text inside the last ``<answer>...</answer>`` of a reply, else the whole reply."""
    if not isinstance(reply, str):
        return ""
    found = _ANSWER_RE.findall(reply)
    return (found[-1] if found else reply).strip()


def score_one(benchmark: str, answer: str, gold: str | list[str]) -> float:
    """1.0 / 0.0 relaxed correctness (ChartQA) or VQA accuracy (TextVQA) of one answer."""
    if benchmark == "chartqa":
        return float(vqa_metrics.chartqa_accuracy([answer], [gold]))
    if benchmark == "textvqa":
        return vqa_metrics.vqa_accuracy(answer, list(gold))
    raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {BENCHMARKS}")


def check_dataset(bench: Benchmark) -> None:
    """Refuse a local dataset path that does not exist (before a model is loaded)."""
    if not Path(bench.dataset).exists() and not is_hub_id(bench.dataset):
        raise RetentionError(
            f"{bench.name} dataset {bench.dataset} does not exist: pass a local folder or a Hub "
            f"dataset id with --{bench.name}-dataset"
        )


def load_benchmark(bench: Benchmark, limit: int | None = None) -> datasets.Dataset:
    """The benchmark's rows (the first ``limit``), checked: the dataset and split exist, the
    three columns are there, and every row has a gold answer."""
    check_dataset(bench)
    try:
        ds = datasets.load_dataset(bench.dataset, split=bench.split)
    except Exception as err:  # noqa: BLE001  (missing split, offline, gated: said in one line)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RetentionError(
            f"{bench.name} dataset {bench.dataset} (split {bench.split}) could not be read "
            f"({type(err).__name__}: {first[:200]}); check --{bench.name}-dataset and the split"
        ) from None
    missing = [
        column
        for column in (bench.image_column, bench.question_column, bench.answer_column)
        if column not in ds.column_names
    ]
    if missing:
        raise RetentionError(
            f"{bench.name} dataset {bench.dataset} (split {bench.split}) has no column(s) "
            f"{missing}; its columns are {ds.column_names}. Name the right ones with "
            f"--{bench.name}-image-column / -question-column / -answer-column."
        )
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    golds = [gold_answers(g) for g in ds[bench.answer_column]]
    unanswered = sum(not g for g in golds)
    if unanswered:
        raise RetentionError(
            f"{bench.name} dataset {bench.dataset} (split {bench.split}): {unanswered} of "
            f"{len(golds)} rows have no gold answer in column {bench.answer_column!r} (TextVQA's "
            "test answers are hidden: use the validation split)."
        )
    return ds


def prompt_messages(question: str) -> list[dict]:
    """One user turn: the image, then the question and the short-answer instruction."""
    text = f"{question.strip()}\n{SHORT_ANSWER_PROMPT}"
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def generate_replies(
    model,
    processor,
    ds: datasets.Dataset,
    bench: Benchmark,
    batch_size: int,
    max_new_tokens: int,
    progress: bool = True,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> list[str]:
    """Greedy replies to the benchmark's (image, question) pairs, in batches, left padded."""
    replies: list[str] = []
    for start in tqdm(range(0, len(ds), batch_size), desc=bench.name, disable=not progress):
        batch = ds[start : start + batch_size]
        conversations = [prompt_messages(str(q)) for q in batch[bench.question_column]]
        replies += greedy_replies(
            model, processor, conversations, batch[bench.image_column], max_new_tokens,
            repetition_penalty,
        )  # fmt: skip
    return replies


def gold_answers(value: object) -> list[str]:
    """A gold column value as a list of strings (one string, a list, or None)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def run_benchmark(
    model,
    processor,
    bench: Benchmark,
    ds: datasets.Dataset,
    batch_size: int,
    max_new_tokens: int,
    progress: bool = True,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> tuple[dict, list[dict]]:
    """The benchmark's summary and its prediction rows (``ds``: its rows, ``load_benchmark``)."""
    golds = [gold_answers(g) for g in ds[bench.answer_column]]
    replies = generate_replies(
        model, processor, ds, bench, batch_size, max_new_tokens, progress, repetition_penalty
    )
    answers = [scored_text(reply) for reply in replies]
    questions = [str(q) for q in ds[bench.question_column]]
    rows = [
        {
            "benchmark": bench.name,
            "index": index,
            "question": question,
            "output": reply,
            "answer": answer,
            "gold": gold,
            "score": score_one(bench.name, answer, gold),
        }
        for index, (question, reply, answer, gold) in enumerate(
            zip(questions, replies, answers, golds, strict=True)
        )
    ]
    summary = {"dataset": source_name(bench.dataset), "split": bench.split, "n": len(rows)}
    if bench.name == "chartqa":
        summary["relaxed_accuracy"] = vqa_metrics.chartqa_accuracy(answers, golds)
    else:
        summary["vqa_accuracy"] = vqa_metrics.textvqa_accuracy(answers, golds)
    return summary, rows


def benchmark_score(name: str, summary: dict) -> float:
    return summary["relaxed_accuracy" if name == "chartqa" else "vqa_accuracy"]


def retention(options: RetentionArguments) -> dict:
    """Run the benchmarks and write retention.json and retention_predictions.parquet. Every
    input (output folder, model, datasets, splits, columns, gold answers) is checked before the
    model is loaded."""
    check_output_folder(
        options.output_dir, "--output-dir", RetentionError, (RETENTION_FILE, RETENTION_PREDICTIONS)
    )
    try:
        check_model(options.model)
    except EvaluationError as err:
        raise RetentionError(str(err)) from None
    for bench in options.benchmarks():
        check_dataset(bench)
    rows_of = {bench.name: load_benchmark(bench, options.limit) for bench in options.benchmarks()}
    model, processor = load_model(options.model)
    summaries, predictions = {}, []
    for bench in options.benchmarks():
        summary, rows = run_benchmark(
            model, processor, bench, rows_of[bench.name], options.batch_size,
            options.max_new_tokens, options.progress, options.repetition_penalty,
        )  # fmt: skip
        summaries[bench.name] = summary
        predictions += rows
    report = {
        "model": source_name(str(options.model)),
        "prompt": SHORT_ANSWER_PROMPT,
        "decoding": options.decoding.record(),
        "benchmarks": summaries,
        "weighted_average": vqa_metrics.weighted_average(
            {name: (benchmark_score(name, s), s["n"]) for name, s in summaries.items()}
        ),
    }
    output_dir = Path(options.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RETENTION_FILE).write_text(json.dumps(report, indent=1))
    datasets.Dataset.from_list(predictions).to_parquet(output_dir / RETENTION_PREDICTIONS)
    return report


@user_errors
def main(argv: list[str] | None = None) -> int:
    (options,) = parse_options(
        RetentionArguments, argv, "python -m model_training.evaluation.retention", __doc__
    )
    report = retention(options)
    for name, summary in report["benchmarks"].items():
        print(
            f"{name}: {100 * benchmark_score(name, summary):.2f} "
            f"({summary['dataset']} {summary['split']}, n = {summary['n']})"
        )
    print(f"weighted average: {100 * report['weighted_average']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
