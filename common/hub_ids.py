"""The one answer to "is this name a Hub repo id?".

A name is a Hub repo id when huggingface_hub's own ``validate_repo_id`` accepts it and it is not
an existing local path (results and training summaries record a local build by its path, e.g.
``outputs/ct-rate-vqa-demo``, which is spelt like ``org/name``). ``namespaced`` also requires the
``ORG/NAME`` form: what a card links and a results repo takes.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub.utils import HFValidationError, validate_repo_id


def spelling_problem(name: object, *, namespaced: bool = False) -> str | None:
    """Why ``name`` is not spelt as a Hub repo id (``ORG/NAME``, or ``NAME`` unless
    ``namespaced``), or None: huggingface_hub's own rule, and nothing that could name a path
    outside a repo (``..``, a leading ``/``, ``\\`` or ``~``)."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if ".." in name or "\\" in name or name.startswith(("/", "~")) or name.count("/") > 1:
        return "it is not of the form ORG/NAME"
    if namespaced and name.count("/") != 1:
        return "it is not of the form ORG/NAME"
    try:
        validate_repo_id(name)
    except HFValidationError as err:
        return str(err).strip().splitlines()[0]
    return None


def is_hub_id(name: object, *, namespaced: bool = False) -> bool:
    """Whether ``name`` reads as a Hub repo id and is not a local path."""
    if not isinstance(name, str) or not name or Path(name).exists():
        return False
    return spelling_problem(name, namespaced=namespaced) is None


def hub_id_or_none(name: object, *, namespaced: bool = True) -> str | None:
    """``name`` when it is a Hub repo id (``is_hub_id``), else None."""
    return name if is_hub_id(name, namespaced=namespaced) else None  # type: ignore[return-value]
