"""What to synthesise: SynthConfig, its validation and the help text of its options."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from numbers import Integral

MIN_CASES, MIN_SIZE, MIN_SLICES = 1, 64, 8


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise; the help texts document each option for the command line."""

    cases: int = field(
        default=12, metadata={"help": "Number of CT volumes (ReXGroundingCT entries) to write."}
    )
    seed: int = field(
        default=0, metadata={"help": "Random seed; the same seed gives identical files."}
    )
    size: int = field(
        default=256, metadata={"help": "In-plane size H = W in voxels (field of view ~350 mm)."}
    )
    slices: int = field(
        default=48, metadata={"help": "Slices D per volume (the chest spans all of them)."}
    )
    full_size: bool = field(
        default=False,
        metadata={
            "help": "Real-size volumes: 512 x 512 in-plane and 260-340 slices per scan "
            "(overrides size and slices)."
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad option."""
        for name, least in (
            ("cases", MIN_CASES),
            ("size", MIN_SIZE),
            ("slices", MIN_SLICES),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ValueError(f"SynthConfig.{name} must be an integer, got {value!r}")
            if value < least:
                raise ValueError(f"SynthConfig.{name} must be >= {least}, got {value}")


def config_help() -> dict[str, str]:
    """Help text of every SynthConfig field, by name."""
    return {f.name: f.metadata["help"] for f in fields(SynthConfig)}
