"""``python -m hub_cards push-model DIR --repo-id ORG/NAME``: publish a trained checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .publish import PublishError, push_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub_cards", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push-model", help="Upload a checkpoint folder as a Hub model repo.")
    p.add_argument("folder", type=Path)
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the model repo.")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="Branch (default: main).")
    p.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT).")
    args = parser.parse_args(argv)
    try:
        report = push_model(
            args.folder,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            endpoint=args.endpoint,
        )
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{report.url}: {'commit ' + report.commit[:12] if report.commit else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
