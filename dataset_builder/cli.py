"""``python -m dataset_builder {synth,build}``.

python -m dataset_builder synth --out synthetic-ct --cases 12
python -m dataset_builder build --rex-dir REX --ctrate-dir CTRATE --out ct-rate-vqa
python -m dataset_builder build --synthetic 24 --out ct-rate-vqa     # demo, no data access
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

from .cli_options import add_dataclass_options, dataclass_from_args
from .config import VARIANTS, BuildOptions
from .sources import CaseError

SYNTH_MARKER = "synth_complete.json"


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (exit status 2), as every user error here."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _check_ranges(args: argparse.Namespace, least: dict[str, int]) -> None:
    """Refuse an integer option below its least value, naming the option."""
    for name, low in least.items():
        value = getattr(args, name)
        if value is not None and value < low:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be >= {low}, got {value}")


def _synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="Write synthetic CT cases in the ReXGroundingCT + CT-RATE "
        "layout (no data access or GPU needed).",
    )
    p.add_argument("--out", required=True, type=Path, help="Folder to write.")
    p.add_argument("--cases", type=int, default=12, help="Number of CT volumes (default 12).")
    p.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
    p.add_argument("--size", type=int, default=256, help="In-plane size H = W (default 256).")
    p.add_argument("--slices", type=int, default=48, help="Axial slices D (default 48).")
    p.add_argument(
        "--full-size",
        action="store_true",
        help="512 x 512 x ~300 volumes, as CT-RATE (overrides --size/--slices).",
    )
    p.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")


def _build_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="Build CT-RATE-VQA as a Hub dataset repo folder.")
    src = p.add_argument_group("input and output")
    src.add_argument(
        "--rex-dir", type=Path, help="ReXGroundingCT folder (dataset.json, segmentations/)."
    )
    src.add_argument("--ctrate-dir", type=Path, help="CT-RATE folder holding dataset/.")
    src.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="Synthesise N cases into OUT/.build_cache/synthetic and build from them.",
    )
    src.add_argument(
        "--synthetic-size",
        type=int,
        default=256,
        help="In-plane size of synthetic cases (default 256).",
    )
    src.add_argument(
        "--synthetic-slices", type=int, default=48, help="Slices of synthetic cases (default 48)."
    )
    src.add_argument(
        "--out",
        type=Path,
        default=Path("ct-rate-vqa"),
        help="Output folder (default ./ct-rate-vqa, so that "
        "load_dataset('ct-rate-vqa', 'zoom') finds it).",
    )
    src.add_argument("--num-workers", type=int, default=1, help="Processes for cases.")
    src.add_argument(
        "--render-threads",
        type=int,
        default=None,
        help="Image-encoding threads per worker (default: cores // workers).",
    )
    src.add_argument(
        "--strict",
        action="store_true",
        help="Stop at the first bad case instead of skipping and reporting it.",
    )
    src.add_argument(
        "--configs",
        nargs="+",
        default=list(VARIANTS),
        choices=VARIANTS,
        help="Configs to build (default: zoom plain).",
    )
    src.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    src.add_argument(
        "--force",
        action="store_true",
        help="Write into a non-empty --out that holds no earlier build, or one inside an input "
        "folder (files the build did not write are still never overwritten or deleted).",
    )
    add_dataclass_options(p, BuildOptions)


def _push_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="Upload a built CT-RATE-VQA folder as a Hub dataset repo.")
    p.add_argument("folder", type=Path, help="A folder written by `build`.")
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repo.")
    p.add_argument("--private", action="store_true", help="Create the repo private.")
    p.add_argument(
        "--gated",
        action="store_true",
        help="Gate access (manual approval), as the CC BY-NC-SA sources require.",
    )
    p.add_argument("--revision", default=None, help="Branch to push to (default: main).")
    p.add_argument(
        "--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT, else the public Hub)."
    )


def _synthetic_source(
    out: Path, cases: int, seed: int, size: int, slices: int, progress: bool
) -> Path:
    """Synthesise once into the build cache; reuse it while its parameters are unchanged."""
    from .repo_layout import CACHE_DIR_NAME
    from .synthetic_ct import SynthConfig, synthesize

    config = SynthConfig(cases=cases, seed=seed, size=size, slices=slices)
    folder = out / CACHE_DIR_NAME / "synthetic" / f"n{cases}-seed{seed}-{size}x{slices}"
    marker = folder / SYNTH_MARKER
    if not marker.is_file():
        summary = synthesize(folder, config, progress=progress)
        marker.write_text(json.dumps(summary, indent=1, default=str))
    return folder


def run_synth(args: argparse.Namespace) -> int:
    from .synthetic_ct import SynthConfig, synthesize
    from .synthetic_ct.config import MIN_CASES, MIN_SIZE, MIN_SLICES

    _check_ranges(args, {"cases": MIN_CASES, "seed": 0, "size": MIN_SIZE, "slices": MIN_SLICES})
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder; give a folder path")

    config = SynthConfig(
        cases=args.cases,
        seed=args.seed,
        size=args.size,
        slices=args.slices,
        full_size=args.full_size,
    )
    summary = synthesize(args.out, config, progress=not args.no_progress)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def run_build(args: argparse.Namespace) -> int:
    from .class_map import load_class_map
    from .repo_layout import build_repo, check_out
    from .synthetic_ct.config import MIN_SIZE, MIN_SLICES

    _check_ranges(
        args,
        {
            "synthetic": 1,
            "synthetic_size": MIN_SIZE,
            "synthetic_slices": MIN_SLICES,
            "num_workers": 1,
            "render_threads": 1,
        },
    )
    options = dataclass_from_args(BuildOptions, args)
    note = ""
    if args.synthetic is not None:
        if args.rex_dir or args.ctrate_dir:
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
            progress=not args.no_progress,
        )
        args.rex_dir, args.ctrate_dir = folder / "rexgroundingct", folder / "ct-rate"
        note = (
            f"Synthetic demo build: {args.synthetic} phantom CT cases from the built-in "
            "synthetic source, not patient data."
        )
    if not args.rex_dir or not args.ctrate_dir:
        raise ValueError("--rex-dir and --ctrate-dir are required (or --synthetic N)")
    manifest = build_repo(
        args.rex_dir,
        args.ctrate_dir,
        args.out,
        options,
        num_workers=args.num_workers,
        strict=args.strict,
        variants=tuple(args.configs),
        progress=not args.no_progress,
        render_threads=args.render_threads,
        source_note=note,
        force=args.force,
    )
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


def run_push(args: argparse.Namespace) -> int:
    from hub_cards.publish import push_dataset

    report = push_dataset(
        args.folder,
        args.repo_id,
        private=args.private,
        gated=args.gated,
        revision=args.revision,
        endpoint=args.endpoint,
    )
    if report.commit is None:
        print(f"{report.repo_id}@{report.revision} already holds {args.folder}: nothing to push")
    else:
        print(
            f"pushed {len(report.changed)} changed file(s), deleted {len(report.deleted)}, "
            f"to {report.url} ({report.revision}, commit {report.commit[:12]})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(
        prog="python -m dataset_builder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _synth_parser(sub)
    _build_parser(sub)
    _push_parser(sub)
    args = parser.parse_args(argv)
    try:
        return {"synth": run_synth, "build": run_build, "push": run_push}[args.command](args)
    except (CaseError, OSError, ValueError) as err:
        print(f"error: {err}".replace("\n", " "), file=sys.stderr)
        return 2
