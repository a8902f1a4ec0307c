"""``python -m hub_cards push-model DIR --repo-id ORG/NAME``: publish a trained checkpoint.
``python -m hub_cards push-space space --repo-id ORG/NAME``: publish the Gradio Space."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from common.cli_options import parse_options
from common.errors import user_errors

from .publish import push_model, push_space

COMMANDS = {
    "push-model": "Upload a checkpoint folder as a Hub model repo.",
    "push-space": "Upload the Space folder (with the project packages it imports) as a Space.",
}


@dataclass
class PushModelArguments:
    """The options of ``python -m hub_cards push-model``."""

    folder: str = field(
        metadata={
            "positional": True,
            "help": "Checkpoint folder (config.json and *.safetensors, as save_pretrained "
            "writes it).",
        }
    )
    repo_id: str = field(metadata={"help": "ORG/NAME of the model repo."})
    private: bool = field(default=False, metadata={"help": "Create the repo private."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to; unset: main."})
    endpoint: str | None = field(
        default=None, metadata={"help": "Hub endpoint; unset: HF_ENDPOINT, else the Hub."}
    )


@dataclass
class PushSpaceArguments(PushModelArguments):
    """The options of ``python -m hub_cards push-space``."""

    folder: str = field(
        metadata={
            "positional": True,
            "help": "Space folder (app.py and README.md with sdk: gradio), e.g. space.",
        }
    )
    repo_id: str = field(metadata={"help": "ORG/NAME of the Space repo."})


PUSHERS = {
    "push-model": (PushModelArguments, push_model),
    "push-space": (PushSpaceArguments, push_space),
}


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__ + "\n" + "\n".join(f"  {k}: {v}" for k, v in COMMANDS.items()))
            return 0
        print(
            f"error: give a command, one of {', '.join(COMMANDS)} (see python -m hub_cards --help)",
            file=sys.stderr,
        )
        return 2
    options, push = PUSHERS[argv[0]]
    (args,) = parse_options(options, argv[1:], f"python -m hub_cards {argv[0]}", __doc__)
    report = push(
        args.folder, args.repo_id, private=args.private, revision=args.revision,
        endpoint=args.endpoint,
    )  # fmt: skip
    print(f"{report.url}: {'commit ' + report.commit[:12] if report.commit else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
