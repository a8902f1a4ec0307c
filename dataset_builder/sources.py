"""Read ReXGroundingCT's dataset.json and locate each case's CT-RATE volume and mask.

The file's schema is checked here, in one place (``check_index`` for its top level,
``check_entry`` for each entry): a top level of the wrong shape stops the build (one line
naming the file and the field); an entry with a missing field or a value of the wrong type is
refused as a ``CaseError`` naming the file, the case and the field (skipped, or fatal under
``--strict``).

Names come from a data file, so they are validated before they touch the file system: a name
must be a plain file name (no folder parts, no ``..``) and its path must stay inside its root
folder (the path itself, links not followed: a Hub cache snapshot links into blobs/).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from common.errors import UserError

# CT-RATE names: <split>_<patient>_<scan>_<reconstruction>.nii.gz, e.g. train_1741_b_2.nii.gz
NAME_PATTERN = re.compile(
    r"^(?P<prefix>[A-Za-z]+)_(?P<patient>[A-Za-z0-9]+)_(?P<scan>[A-Za-z0-9]+)"
    r"_(?P<recon>[A-Za-z0-9]+)\.nii(\.gz)?$"
)
CTRATE_SPLIT_FOLDERS = {"train": "train_fixed", "valid": "valid_fixed"}  # CT-RATE's layout
INDEX_NAME = "dataset.json"  # ReXGroundingCT's index of cases
CHANNEL_KEY = re.compile(r"^(?:0|[1-9][0-9]*)$")  # a mask channel index written as a JSON key
SHAPE_AXES = 3  # "shape": [H, W, D]


class CaseError(Exception):
    """A case that cannot be used; the message names the case and says what to do."""

    def __init__(self, case: str, reason: str):
        super().__init__(f"case {case}: {reason}")
        self.case = case
        self.reason = reason

    def __reduce__(self) -> tuple:  # a worker process's CaseError reaches the parent intact
        return type(self), (self.case, self.reason)


class IndexFileError(UserError):
    """A dataset.json whose top level is not ReXGroundingCT's: one line naming file and field."""


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


# -- the dataset.json schema -------------------------------------------------------------------


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _count(value: object) -> bool:
    """A non-negative whole number (a float such as 12.0 is read as one)."""
    if isinstance(value, float):
        return value.is_integer() and value >= 0
    return _integer(value) and value >= 0


def _shape(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == SHAPE_AXES
        and all(_integer(n) and n >= 1 for n in value)
    )


def _channels(item: Callable[[object], bool], non_empty: bool = False) -> Callable[..., bool]:
    """An object keyed by mask channel index ("0", "1", ...) whose values pass ``item``."""

    def valid(value: object) -> bool:
        return (
            isinstance(value, dict)
            and (bool(value) or not non_empty)
            and all(
                isinstance(k, str) and CHANNEL_KEY.match(k) and item(v) for k, v in value.items()
            )
        )

    return valid


@dataclass(frozen=True)
class FieldRule:
    """One field of a dataset.json entry: whether it must be there, and what it must hold."""

    required: bool
    expected: str  # what the field must be, as the message says it
    valid: Callable[[object], bool]


_KEYED = 'keyed by mask channel index ("0", "1", ...)'
# ReXGroundingCT's entry (data-facts); fields not listed here are not read and not checked
ENTRY_SCHEMA: dict[str, FieldRule] = {
    "name": FieldRule(True, "a CT-RATE volume file name such as train_1_a_1.nii.gz", _text),
    "findings": FieldRule(True, f"an object of report sentences {_KEYED}", _channels(_text)),
    "categories": FieldRule(
        True,
        f'a non-empty object of category codes (such as "2b") {_KEYED}',
        _channels(_text, non_empty=True),
    ),
    "shape": FieldRule(False, f"a list of {SHAPE_AXES} positive integers [H, W, D]", _shape),
    "entity_counts": FieldRule(
        False, f"an object of whole numbers >= 0 {_KEYED}", _channels(_count)
    ),
    "pixels": FieldRule(False, f"an object of whole numbers >= 0 {_KEYED}", _channels(_count)),
    "protocol": FieldRule(False, "a string", lambda value: isinstance(value, str)),
}


def _shown(value: object) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def entry_problems(entry: object) -> list[str]:
    """What is wrong with one dataset.json entry, field by field (empty: it fits the schema)."""
    if not isinstance(entry, dict):
        return [f"the entry is not an object (got {_shown(entry)})"]
    problems = []
    for name, rule in ENTRY_SCHEMA.items():
        if name not in entry:
            if rule.required:
                problems.append(f"field {name!r} is missing (it must be {rule.expected})")
        elif not rule.valid(entry[name]):
            problems.append(f"field {name!r} must be {rule.expected}, got {_shown(entry[name])}")
    if not problems:
        sentences, codes = set(entry["findings"]), set(entry["categories"])
        if sentences != codes:
            problems.append(
                "fields 'findings' and 'categories' must list the same mask channels, got "
                f"{sorted(sentences, key=int)} and {sorted(codes, key=int)}"
            )
    return problems


def check_entry(entry: object, index_path: Path, label: str) -> None:
    """Raise a CaseError naming ``index_path``, the case and each field that does not fit
    ``ENTRY_SCHEMA``."""
    problems = entry_problems(entry)
    if problems:
        raise CaseError(
            label,
            f"{index_path}: {'; '.join(problems)}; fix the entry in {INDEX_NAME} or leave the "
            "case out",
        )


def check_index(raw: object, path: Path, source_splits: list[str]) -> list[tuple[str, object]]:
    """(source split, entry) pairs of the parsed dataset.json ``raw``; a flat list counts as
    'train'. A top level that is not ReXGroundingCT's is one IndexFileError naming the field."""
    if isinstance(raw, list):
        pairs = [("train", entry) for entry in raw]
        listed = "its list"
    elif isinstance(raw, dict):
        missing = [s for s in source_splits if s not in raw]
        if missing:
            raise IndexFileError(
                f"{path} has no split(s) {missing}; it has {sorted(raw)} (fix --source-splits)"
            )
        for split in source_splits:
            if not isinstance(raw[split], list):
                raise IndexFileError(
                    f"{path}: field {split!r} must be a list of case entries, got "
                    f"{_shown(raw[split])}; fix {INDEX_NAME} (or leave the split out of "
                    "--source-splits)"
                )
        pairs = [(split, entry) for split in source_splits for entry in raw[split]]
        listed = f"split(s) {source_splits}"
    else:
        raise IndexFileError(
            f"{path}: expected an object of split lists or a list of entries, got "
            f"{_shown(raw)}; re-download {INDEX_NAME}"
        )
    if not pairs:
        raise IndexFileError(f"{path} lists no case in {listed}; give a {INDEX_NAME} with cases")
    return pairs


def read_entries(rex_dir: Path, source_splits: list[str]) -> list[tuple[str, object]]:
    """(source split, entry) pairs from ``rex_dir``'s dataset.json (``check_index``)."""
    path = rex_dir / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --rex-dir must be the ReXGroundingCT folder holding {INDEX_NAME} "
            "and segmentations/"
        )
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:  # also a file that is not UTF-8 text
        raise IndexFileError(f"{path} is not valid JSON ({err}); re-download it") from err
    return check_index(raw, path, source_splits)


def _entry_label(split: str, position: int, entry: object) -> str:
    """The case an entry names, or its place in dataset.json when it names none."""
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if _text(name) else f"{INDEX_NAME} {split}[{position}]"


def _spec(split: str, entry: dict, rex_dir: Path, ctrate_dir: Path) -> CaseSpec:
    """The case of an entry that fits the schema (its name and paths still to be checked)."""
    name = entry["name"]
    match = parse_name(name)
    mask_path = rex_dir / "segmentations" / name
    if not _inside(rex_dir, mask_path):
        raise CaseError(name, f"mask path {mask_path} leaves {rex_dir}; refusing it")
    findings = sorted(
        (
            Finding(int(key), entry["findings"][key], code.strip().lower())
            for key, code in entry["categories"].items()
        ),
        key=lambda finding: finding.index,
    )
    shape = entry.get("shape")
    return CaseSpec(
        name=name,
        case_id=case_id_of(name),
        patient_id=f"{match['prefix']}_{match['patient']}",
        source_split=split,
        ct_path=ct_path_for(ctrate_dir, name),
        mask_path=mask_path,
        findings=tuple(findings),
        shape=None if shape is None else tuple(shape),
    )


def load_cases(
    rex_dir: str | Path, ctrate_dir: str | Path, source_splits: list[str]
) -> tuple[list[CaseSpec], list[CaseError]]:
    """All usable case specs, and the entries refused outright (schema, names, duplicates)."""
    rex_dir, ctrate_dir = Path(rex_dir), Path(ctrate_dir)
    specs: list[CaseSpec] = []
    refused: list[CaseError] = []
    seen: set[str] = set()
    positions: dict[str, int] = {}
    for split, entry in read_entries(rex_dir, source_splits):
        position = positions[split] = positions.get(split, -1) + 1
        try:
            check_entry(entry, rex_dir / INDEX_NAME, _entry_label(split, position, entry))
            spec = _spec(split, cast(dict, entry), rex_dir, ctrate_dir)  # an object: checked
            if spec.name in seen:
                raise CaseError(
                    spec.name, "listed twice in dataset.json; the second entry is ignored"
                )
            seen.add(spec.name)
            specs.append(spec)
        except CaseError as err:
            refused.append(err)
    return specs, refused
