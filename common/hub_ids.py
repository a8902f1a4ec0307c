"""The one answer to "is this name a Hub repo id?".

A name is a Hub repo id when huggingface_hub's own ``validate_repo_id`` accepts it and it is not
an existing local path (results and training summaries record a local build by its path, e.g.
``outputs/ct-rate-vqa-demo``, which is spelt like ``org/name``). ``namespaced`` also requires the
``ORG/NAME`` form: what a card links and a results repo takes.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub.utils import HFValidationError, validate_repo_id


def is_hub_id(name: object, *, namespaced: bool = False) -> bool:
    """Whether ``name`` reads as a Hub repo id and is not a local path."""
    if not isinstance(name, str) or not name or Path(name).exists():
        return False
    if namespaced and name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_id_or_none(name: object, *, namespaced: bool = True) -> str | None:
    """``name`` when it is a Hub repo id (``is_hub_id``), else None."""
    return name if is_hub_id(name, namespaced=namespaced) else None  # type: ignore[return-value]

