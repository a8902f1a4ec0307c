"""Read ReXGroundingCT's dataset.json and locate each case's CT-RATE volume and mask.

Names come from a data file, so they are validated before they touch the file system: a name
must be a plain file name (no folder parts, no ``..``) and its path must stay inside its root
folder (the path itself, links not followed: a Hub cache snapshot links into blobs/).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# CT-RATE names: <split>_<patient>_<scan>_<reconstruction>.nii.gz, e.g. train_1741_b_2.nii.gz
NAME_PATTERN = re.compile(
    r"^(?P<prefix>[A-Za-z]+)_(?P<patient>[A-Za-z0-9]+)_(?P<scan>[A-Za-z0-9]+)"
    r"_(?P<recon>[A-Za-z0-9]+)\.nii(\.gz)?$"
)
CTRATE_SPLIT_FOLDERS = {"train": "train_fixed", "valid": "valid_fixed"}  # CT-RATE's layout


class CaseError(Exception):
    """A case that cannot be used; the message names the case and says what to do."""

    def __init__(self, case: str, reason: str):
        super().__init__(f"case {case}: {reason}")
        self.case = case
        self.reason = reason


@dataclass(frozen=True)
class Finding:
    """One report sentence = one mask channel."""

    index: int
    sentence: str
    category_code: str


@dataclass(frozen=True)
class CaseSpec:
    """Everything needed to process one ReXGroundingCT entry."""

    name: str  # train_1741_b_2.nii.gz
    case_id: str  # train_1741_b_2
    patient_id: str  # train_1741
    source_split: str  # train | val
    ct_path: Path
    mask_path: Path
    findings: tuple[Finding, ...] = field(default=())
    shape: tuple[int, ...] | None = None  # [H, W, D] as dataset.json states it


def case_id_of(name: str) -> str:
    return name.removesuffix(".gz").removesuffix(".nii")


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` itself lies in ``root``; symlinks are not followed, so a Hugging Face
    cache snapshot (``snapshots/<rev>/`` links into ``blobs/``) is accepted. Names are already
    free of ``..`` and folder parts (see ``parse_name``)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))


def parse_name(name: object) -> re.Match:
    """Validate a dataset.json name; raise CaseError for anything that could escape a folder."""
    label = repr(name)[:80]
    if not isinstance(name, str) or not name:
        raise CaseError(label, "entry has no 'name' string; fix dataset.json")
    if "/" in name or "\\" in name or ".." in name or name.startswith((".", "~")):
        raise CaseError(
            label,
            "name contains a path (folder parts or '..'); refusing to read it "
            "(names in dataset.json must be plain file names)",
        )
    match = NAME_PATTERN.match(name)
    if match is None:
        raise CaseError(
            label,
            "name does not look like a CT-RATE volume name "
            "(<split>_<patient>_<scan>_<recon>.nii.gz)",
        )
    return match


def ct_path_for(ctrate_dir: Path, name: str) -> Path:
    """CT-RATE path of a ReXGroundingCT name (see data-facts: dataset/<split>_fixed/...)."""
    match = parse_name(name)
    prefix = match["prefix"].lower()
    folder = CTRATE_SPLIT_FOLDERS.get(prefix)
    if folder is None:
        raise CaseError(
            name, f"unknown CT-RATE split prefix {prefix!r} (expected train_ or valid_)"
        )
    patient = f"{match['prefix']}_{match['patient']}"
    scan = f"{patient}_{match['scan']}"
    path = ctrate_dir / "dataset" / folder / patient / scan / name
    if not _inside(ctrate_dir, path):
        raise CaseError(name, f"resolved CT path {path} leaves {ctrate_dir}; refusing it")
    return path


def _findings(name: str, entry: dict) -> tuple[Finding, ...]:
    findings = entry.get("findings") or {}
    categories = entry.get("categories") or {}
    if not isinstance(findings, dict) or not isinstance(categories, dict):
        raise CaseError(name, "'findings' and 'categories' must be objects keyed by channel index")
    out = []
    for key, code in categories.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise CaseError(name, f"category key {key!r} is not a channel index") from None
        out.append(
            Finding(
                index=index,
                sentence=str(findings.get(key, "")),
                category_code=str(code).strip().lower(),
            )
        )
    return tuple(sorted(out, key=lambda f: f.index))


def read_entries(rex_dir: Path, source_splits: list[str]) -> list[tuple[str, dict]]:
    """(source split, entry) pairs from dataset.json; a flat list counts as 'train'."""
    path = rex_dir / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --rex-dir must be the ReXGroundingCT folder holding dataset.json "
            "and segmentations/"
        )
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-download it") from err
    if isinstance(raw, list):
        return [("train", e) for e in raw]
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of split lists or a list of entries")
    missing = [s for s in source_splits if s not in raw]
    if missing:
        raise ValueError(
            f"{path} has no split(s) {missing}; it has {sorted(raw)} (fix --source-splits)"
        )
    return [(split, e) for split in source_splits for e in raw[split]]


def load_cases(
    rex_dir: str | Path, ctrate_dir: str | Path, source_splits: list[str]
) -> tuple[list[CaseSpec], list[CaseError]]:
    """All usable case specs, and the entries refused outright (bad names, duplicates)."""
    rex_dir, ctrate_dir = Path(rex_dir), Path(ctrate_dir)
    specs: list[CaseSpec] = []
    refused: list[CaseError] = []
    seen: set[str] = set()
    for split, entry in read_entries(rex_dir, source_splits):
        try:
            if not isinstance(entry, dict):
                raise CaseError(repr(entry)[:80], "dataset.json entry is not an object")
            name = entry.get("name")
            match = parse_name(name)
            if name in seen:
                raise CaseError(name, "listed twice in dataset.json; the second entry is ignored")
            seen.add(name)
            mask_path = rex_dir / "segmentations" / name
            if not _inside(rex_dir, mask_path):
                raise CaseError(name, f"mask path {mask_path} leaves {rex_dir}; refusing it")
            shape = entry.get("shape")
            specs.append(
                CaseSpec(
                    name=name,
                    case_id=case_id_of(name),
                    patient_id=f"{match['prefix']}_{match['patient']}",
                    source_split=split,
                    ct_path=ct_path_for(ctrate_dir, name),
                    mask_path=mask_path,
                    findings=_findings(name, entry),
                    shape=tuple(int(s) for s in shape) if isinstance(shape, list) else None,
                )
            )
        except CaseError as err:
            refused.append(err)
    return specs, refused
