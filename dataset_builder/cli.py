"""``python -m dataset_builder {synth,build,push} [options]``.

python -m dataset_builder synth --out synthetic-ct --cases 12
python -m dataset_builder build --rex-dir REX --ctrate-dir CTRATE --out ct-rate-vqa
python -m dataset_builder build --synthetic 24 --out ct-rate-vqa     # demo, no data access
python -m dataset_builder push ct-rate-vqa --repo-id ORG/CT-RATE-VQA --gated

Each command's options are the fields of its dataclasses (``SynthArguments``;
``BuildArguments`` and ``BuildOptions``; ``PushArguments``), parsed by transformers'
``HfArgumentParser``: ``python -m dataset_builder COMMAND --help`` lists them with their
defaults; ``--num-workers`` and ``--num_workers`` are both accepted. A user error is one line
on stderr and exit status 2.

From Python, ``build(BuildArguments(...), BuildOptions(...))`` runs the build command (the run
driver's demo build does) and returns the manifest; its refusals are one ``BuildError``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.cli_options import parse_options
from common.errors import UserError, user_errors

from .config import CONFIGS, BuildOptions
from .sources import CaseError
from .synthetic_ct.config import MIN_CASES, MIN_SIZE, MIN_SLICES, SynthConfig

PROG = "python -m dataset_builder"
SYNTH_MARKER = "synth_complete.json"


class BuildError(UserError):
    """Input a dataset_builder command refuses (an option, a folder, a case); one line."""


@contextmanager
def builder_errors() -> Iterator[None]:
    """The builder's refusals (a ValueError, a CaseError, a missing file) as one BuildError."""
    try:
        yield
    except UserError:
        raise
    except (CaseError, OSError, ValueError) as err:
        raise BuildError(str(err).replace("\n", " ")) from err


def _check_ranges(args: object, least: dict[str, int]) -> None:
    """Refuse an integer option below its least value, naming the option."""
    for name, low in least.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise BuildError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


def _synth_field(name: str) -> Any:
    """A SynthConfig field (default and help) as a command-line option."""
    f = SynthConfig.__dataclass_fields__[name]
    return field(default=f.default, metadata=f.metadata)


def _progress_field() -> Any:
    return field(default=True, metadata={"help": "Show progress bars (--no-progress: none)."})


@dataclass
class SynthArguments:
    """Write synthetic CT cases in the ReXGroundingCT + CT-RATE layout.

    No data access or GPU needed.
    """

    out: Path = field(metadata={"help": "Folder to write."})
    cases: int = _synth_field("cases")
    seed: int = _synth_field("seed")
    size: int = _synth_field("size")
    slices: int = _synth_field("slices")
    full_size: bool = _synth_field("full_size")
    progress: bool = _progress_field()

    def __post_init__(self) -> None:
        least = {"cases": MIN_CASES, "seed": 0, "size": MIN_SIZE, "slices": MIN_SLICES}
        _check_ranges(self, least)

    def config(self) -> SynthConfig:
        return SynthConfig(
            cases=self.cases,
            seed=self.seed,
            size=self.size,
            slices=self.slices,
            full_size=self.full_size,
        )


@dataclass
class BuildArguments:
    """Build CT-RATE-VQA as a Hub dataset repo folder.

    These options say where from, where to and how to run; the build parameters (recorded in
    the manifest and the card) are the fields of ``BuildOptions``.
    """

    rex_dir: Path | None = field(
        default=None, metadata={"help": "ReXGroundingCT folder (dataset.json, segmentations/)."}
    )
    ctrate_dir: Path | None = field(
        default=None, metadata={"help": "CT-RATE folder holding dataset/."}
    )
    synthetic: int | None = field(
        default=None,
        metadata={
            "help": "Synthesise N cases into OUT/.build_cache/synthetic and build from them.",
            "metavar": "N",
        },
    )
    synthetic_size: int = field(
        default=SynthConfig.size, metadata={"help": "In-plane size of synthetic cases."}
    )
    synthetic_slices: int = field(
        default=SynthConfig.slices, metadata={"help": "Slices of synthetic cases."}
    )
    out: Path = field(
        default=Path("ct-rate-vqa"),
        metadata={
            "help": "Output folder (./ct-rate-vqa: load_dataset('ct-rate-vqa', 'zoom') finds it)."
        },
    )
    num_workers: int = field(default=1, metadata={"help": "Processes for cases."})
    render_threads: int | None = field(
        default=None,
        metadata={"help": "Image-encoding threads per worker (None: cores // workers)."},
    )
    strict: bool = field(
        default=False,
        metadata={"help": "Stop at the first bad case instead of skipping and reporting it."},
    )
    configs: list[str] = field(
        default_factory=lambda: list(CONFIGS),
        metadata={
            "help": "Configs to build: zoom and plain (classification), grounding (MedReasoner's "
            "reasoning grounding); all come from one pass over the cases.",
            "choices": CONFIGS,
        },
    )
    progress: bool = _progress_field()
    force: bool = field(
        default=False,
        metadata={
            "help": "Write into a non-empty --out that holds no earlier build, or one inside an "
            "input folder (files the build did not write are still never overwritten or deleted)."
        },
    )

    def __post_init__(self) -> None:
        least = {"synthetic": 1, "synthetic_size": MIN_SIZE, "synthetic_slices": MIN_SLICES,
                 "num_workers": 1, "render_threads": 1}  # fmt: skip
        _check_ranges(self, least)


@dataclass
class PushArguments:
    """Upload a built CT-RATE-VQA folder as a Hub dataset repo."""

    folder: Path = field(metadata={"help": "A folder written by `build`.", "positional": True})
    repo_id: str = field(metadata={"help": "ORG/NAME of the dataset repo."})
    private: bool = field(default=False, metadata={"help": "Create the repo private."})
    gated: bool = field(
        default=False,
        metadata={"help": "Gate access (manual approval), as the CC BY-NC-SA sources require."},
    )
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (None: main)."})
    endpoint: str | None = field(
        default=None, metadata={"help": "Hub endpoint (None: HF_ENDPOINT, else the public Hub)."}
    )


def _synthetic_source(
    out: Path, cases: int, seed: int, size: int, slices: int, progress: bool
) -> Path:
    """Synthesise once into the build cache; reuse it while its parameters are unchanged."""
    from .repo_layout import CACHE_DIR_NAME
    from .synthetic_ct import synthesize

    config = SynthConfig(cases=cases, seed=seed, size=size, slices=slices)
    folder = out / CACHE_DIR_NAME / "synthetic" / f"n{cases}-seed{seed}-{size}x{slices}"
    marker = folder / SYNTH_MARKER
    if not marker.is_file():
        summary = synthesize(folder, config, progress=progress)
        marker.write_text(json.dumps(summary, indent=1, default=str))
    return folder


def run_synth(args: SynthArguments) -> int:
    from .synthetic_ct import synthesize
    from .synthetic_ct.writer import MARKER_NAME

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder; give a folder path")
    if args.out.is_dir() and any(args.out.iterdir()) and not (args.out / MARKER_NAME).is_file():
        raise ValueError(
            f"--out {args.out} is not empty and holds no synthetic source of ours (no "
            f"{MARKER_NAME}): synth would overwrite its files; give an empty or new folder"
        )
    summary = synthesize(args.out, args.config(), progress=args.progress)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def build(args: BuildArguments, options: BuildOptions) -> dict:
    """Build CT-RATE-VQA into ``args.out`` (from ``--synthetic N`` cases or the source folders);
    return its manifest. A refusal is one BuildError."""
    with builder_errors():
        return _build(args, options)


def _build(args: BuildArguments, options: BuildOptions) -> dict:
    from .class_map import load_class_map
    from .repo_layout import build_repo, check_out

    rex_dir, ctrate_dir, note = args.rex_dir, args.ctrate_dir, ""
    if args.synthetic is not None:
        if rex_dir or ctrate_dir:
            raise ValueError("give either --synthetic N or --rex-dir/--ctrate-dir, not both")
        # checked before the synthetic source is written into --out
        check_out(args.out, force=args.force)
        load_class_map(options.class_map)
        folder = _synthetic_source(
            args.out,
            args.synthetic,
            options.seed,
            args.synthetic_size,
            args.synthetic_slices,
            progress=args.progress,
        )
        rex_dir, ctrate_dir = folder / "rexgroundingct", folder / "ct-rate"
        note = (
            f"Synthetic demo build: {args.synthetic} phantom CT cases from the built-in "
            "synthetic source, not patient data."
        )
    if not rex_dir or not ctrate_dir:
        raise ValueError("--rex-dir and --ctrate-dir are required (or --synthetic N)")
    return build_repo(
        rex_dir,
        ctrate_dir,
        args.out,
        options,
        num_workers=args.num_workers,
        strict=args.strict,
        variants=tuple(args.configs),
        progress=args.progress,
        render_threads=args.render_threads,
        source_note=note,
        force=args.force,
    )


def run_build(args: BuildArguments, options: BuildOptions) -> int:
    manifest = build(args, options)
    counts = manifest["counts"]
    print(f"CT-RATE-VQA written to {args.out}")
    for variant, info in manifest["dataset_info"].items():
        sizes = ", ".join(f"{s['name']} {s['num_examples']} rows" for s in info["splits"])
        print(f"  {variant}: {sizes}")
    print(
        f"  cases used {counts['cases_used']} of {counts['cases_listed']} "
        f"({counts['cases_reused_from_cache']} from cache); skipped: "
        f"{len(manifest['skipped'])} (see {args.out}/build_manifest.json)"
    )
    return 0


def run_push(args: PushArguments) -> int:
    from hub_cards.publish import push_dataset

    report = push_dataset(
        args.folder,
        args.repo_id,
        private=args.private,
        gated=args.gated,
        revision=args.revision,
        endpoint=args.endpoint,
    )
    if report.left_out_line():
        print(report.left_out_line())
    if report.commit is None:
        print(f"{report.repo_id}@{report.revision} already holds {args.folder}: nothing to push")
    else:
        print(
            f"pushed {len(report.changed)} changed file(s), deleted {len(report.deleted)}, "
            f"to {report.url} ({report.revision}, commit {report.commit[:12]})"
        )
    return 0


COMMANDS: dict[str, tuple[tuple[type, ...], Callable[..., int]]] = {
    "synth": ((SynthArguments,), run_synth),
    "build": ((BuildArguments, BuildOptions), run_build),
    "push": ((PushArguments,), run_push),
}


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else ""
    if command not in COMMANDS:
        listing = "\n".join(f"  {name:6} {types[0].__doc__.splitlines()[0]}"
                            for name, (types, _) in COMMANDS.items())  # fmt: skip
        if command in ("-h", "--help"):
            print(f"usage: {PROG} {{{','.join(COMMANDS)}}} ...\n\n{__doc__}\ncommands:\n{listing}")
            return 0
        print(f"{PROG}: error: give a command, one of {', '.join(COMMANDS)}, got "
              f"{command or 'none'!r} (see {PROG} --help)", file=sys.stderr)  # fmt: skip
        return 2
    dataclasses, run = COMMANDS[command]
    with builder_errors():
        options = parse_options(dataclasses, argv[1:], f"{PROG} {command}", dataclasses[0].__doc__)
        return run(*options)
