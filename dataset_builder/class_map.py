"""The seven MedReason-R1 classes and the ReXGroundingCT category-code mapping (a data file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_CLASS_MAP = "category_classes.json"


@dataclass(frozen=True)
class ClassMap:
    """Maps ReXGroundingCT category codes ("2d") to class names ("pulmonary nodules/masses").

    ``codes`` holds every known code; a code mapped to ``None`` is known but unused.
    """

    classes: tuple[str, ...]
    codes: dict[str, str | None]
    source: str

    def lookup(self, code: str) -> str | None:
        """Class name for ``code``; ``None`` for a known unused code; KeyError if unknown."""
        return self.codes[code.strip().lower()]

    def is_known(self, code: str) -> bool:
        return code.strip().lower() in self.codes


def load_class_map(path: str | Path | None = None) -> ClassMap:
    """Load the code -> class mapping; ``None`` loads the packaged default."""
    if path is None:
        text = resources.files("dataset_builder.data").joinpath(DEFAULT_CLASS_MAP).read_text()
        source = f"dataset_builder/data/{DEFAULT_CLASS_MAP}"
    else:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise FileNotFoundError(
                f"class map {path} cannot be read ({err}); fix --class-map"
            ) from err
        source = str(path)
    try:
        raw = json.loads(text)
        classes = tuple(raw["classes"])
        codes = {str(k).strip().lower(): v for k, v in raw["codes"].items()}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"class map {source} is malformed ({err}); it needs a 'classes' list and a "
            "'codes' object mapping each category code to a class name or null"
        ) from err
    bad = {c: v for c, v in codes.items() if v is not None and v not in classes}
    if bad:
        raise ValueError(f"class map {source} maps codes to classes not in its list: {bad}")
    return ClassMap(classes=classes, codes=codes, source=source)
