"""Where the Space serves and which model it runs, as the Hub starts a Space.

The Hub starts a Gradio Space with ``python app.py``: no arguments, in the folder of the
downloaded repo, with ``GRADIO_SERVER_NAME=0.0.0.0``, ``GRADIO_SERVER_PORT=7860`` and
``SPACE_ID=<owner>/<name>`` in the environment. So every setting falls back from the command
line to the environment:

- address: ``--host``, else ``GRADIO_SERVER_NAME``, else 127.0.0.1 (Gradio's default);
- port: ``--port``, else ``GRADIO_SERVER_PORT``, else 7860 (Gradio's default);
- model: ``--model``, else ``MEDREASON_MODEL``, else, on a Space only (``SPACE_ID`` set), the
  first ``models:`` entry of the README.md beside app.py (the Space card), else the local demo
  folder ``outputs/demo-cpu/final``.

The card's entry is a Hub repo, so it is read only where the Hub runs the app: started locally
with no arguments, the app reads nothing from the internet. This module imports no heavy
library: app.py checks the environment with it before it imports Gradio, which reads
``GRADIO_SERVER_PORT`` as it is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from common.hub_ids import is_hub_id

HOST_ENV, PORT_ENV = "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"  # Gradio's own variables
DEFAULT_HOST = "127.0.0.1"  # Gradio's default without GRADIO_SERVER_NAME: this machine only
DEFAULT_PORT = 7860  # Gradio's default without GRADIO_SERVER_PORT
MODEL_ENV = "MEDREASON_MODEL"  # ours: the model of a Space (a Variable in its settings)
SPACE_ENV = "SPACE_ID"  # set by the Hub in every Space it runs
CARD = "README.md"  # the Space card beside app.py; its `models:` names the Space's model
DEMO_MODEL = "outputs/demo-cpu/final"  # ours: `python -m model_training.run` makes it


class SpaceError(UserError):
    """A bad option or setting of the Space; the message (one line) says what to do."""


def check_port(port: int, name: str) -> int:
    if not 1 <= port <= 65535:
        raise SpaceError(f"{name} {port}: give a port between 1 and 65535")
    return port


def check_host(host: str, name: str) -> str:
    if not host.strip():
        raise SpaceError(f"{name} is empty: give an address such as 127.0.0.1 (or 0.0.0.0)")
    return host


def env_port() -> int | None:
    """``GRADIO_SERVER_PORT`` as a port, or None when unset; refused when it is not one."""
    text = os.environ.get(PORT_ENV)
    if text is None:
        return None
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise SpaceError(f"{PORT_ENV}={text!r}: give a port between 1 and 65535, or unset it")
    return port


def serve_address(host: str | None, port: int | None) -> tuple[str, int]:
    """(address, port) to serve on: the command line's, else Gradio's variables, else
    Gradio's defaults."""
    if host is None:
        host = check_host(os.environ.get(HOST_ENV, DEFAULT_HOST), HOST_ENV)
    if port is None:
        port = env_port() or DEFAULT_PORT
    return host, port


@dataclass(frozen=True)
class ModelChoice:
    """The model the Space runs, and where that name came from (None: the demo default)."""

    name: str
    source: str | None


def card_model(readme: Path) -> str | None:
    """The first ``models:`` entry of the Space card ``readme``, or None when it has none."""
    if not readme.is_file():
        return None
    import yaml
    from huggingface_hub import metadata_load

    try:
        meta = metadata_load(readme) or {}
    except (ValueError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpaceError(f"{readme}: its YAML front matter cannot be read ({first})") from None
    models = meta.get("models")
    if isinstance(models, str):
        models = [models]
    if not models:
        return None
    if not isinstance(models, list) or not is_hub_id(models[0]):
        raise SpaceError(
            f"{readme}: models: {models!r} does not start with a Hub model id: name the Space's "
            f"model as ORG/NAME there, or set {MODEL_ENV}"
        )
    return models[0]


def choose_model(model: str | None, app_dir: Path) -> ModelChoice:
    """--model, else MEDREASON_MODEL, else (on a Space) the card's model, else the demo."""
    if model is not None:
        return ModelChoice(model, "--model")
    named = os.environ.get(MODEL_ENV)
    if named is not None:
        if not named.strip():
            raise SpaceError(f"{MODEL_ENV} is empty: set it to a checkpoint folder or Hub id")
        return ModelChoice(named.strip(), MODEL_ENV)
    if os.environ.get(SPACE_ENV):
        readme = app_dir / CARD
        card = card_model(readme)
        if card is not None:
            return ModelChoice(card, f"the models: entry of {readme}")
    return ModelChoice(DEMO_MODEL, None)
