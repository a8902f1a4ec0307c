"""The leaderboard's layouts by name: a new layout is a module with one ``Layout`` and one line
here."""

from __future__ import annotations

from .accuracy import LEADERBOARD
from .base import Layout
from .grounding import GROUNDING
from .multitask import MULTITASK_LAYOUT
from .paper_layouts import FIG3, TABLE1, TABLE3, TABLE4
from .reliance import RELIANCE

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        LEADERBOARD,  # the default
        TABLE1,
        TABLE3,
        TABLE4,
        FIG3,
        GROUNDING,
        MULTITASK_LAYOUT,
        RELIANCE,
    )
}
