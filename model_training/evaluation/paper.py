"""The figures MedReason-R1 (Li, Tang, Li, Zhou 2025, arXiv 2510.19626) reports on CT-RATE-VQA,
defined once: the leaderboard's paper layouts put them beside ours.

Accuracies and consistencies are in %; None where the paper gives no figure ("-").
"""

from __future__ import annotations

from dataclasses import dataclass

from dataset_builder.config import VARIANTS

from ..rewards import DEFAULT_REWARDS

ZOOM, PLAIN = VARIANTS  # the dataset's configs: with the zoom-in patch, plain images
FORMAT, VALIDITY, CORRECTNESS = DEFAULT_REWARDS  # the GRPO rewards' names


@dataclass(frozen=True)
class PaperModel:
    """One row of the paper's Table 1: its name there, size, and accuracy per prompt mode."""

    name: str
    size: str
    think: float | None
    no_think: float | None
    hub_ids: tuple[str, ...] = ()  # Hub ids of this model, matched case-insensitively


MEDREASON_R1 = PaperModel(
    "MedReason-R1", "7B", 52.18, 51.68, ("liyf001/MEDREASON-R1",)
)  # paper: Table 1
TABLE1 = (
    MEDREASON_R1,
    PaperModel("Qwen2.5-VL-7B", "7B", 22.38, 23.86, ("Qwen/Qwen2.5-VL-7B-Instruct",)),  # paper: T1
    PaperModel("Qwen2.5-VL-32B", "32B", 25.43, 13.65, ("Qwen/Qwen2.5-VL-32B-Instruct",)),  # T1
    PaperModel("Qwen2.5-VL-72B", "72B", 21.42, 16.26, ("Qwen/Qwen2.5-VL-72B-Instruct",)),  # T1
    PaperModel("HuatuoGPT-Vision-7B", "7B", 17.57, 26.65),  # paper: Table 1
    PaperModel("MedVLM-R1", "2B", 20.98, 20.26),  # paper: Table 1
    PaperModel("Med-R1", "7B", 24.31, 24.64),  # paper: Table 1
    PaperModel("BiRD", "7B", None, 7.44),  # paper: Table 1 (no "with think" figure)
)

# Table 3: SFT with the zoom-in patch vs on plain images (accuracy %, the SFT model answering
# without think: the same 48.54 as Fig. 3(a)'s "without think")
TABLE3_NO_THINK = {ZOOM: 48.54, PLAIN: 45.32}  # paper: Table 3
TABLE3_LABELS = {ZOOM: "with zoom-in patch", PLAIN: "without zoom-in patch (plain images)"}

# Table 4: GRPO reward sets after SFT (accuracy % of the SFT + RL model, with think), in the
# paper's row order
TABLE4_THINK = (
    ((CORRECTNESS,), "correctness only", 46.95),  # paper: Table 4
    ((CORRECTNESS, FORMAT), "+ format", 50.86),  # paper: Table 4
    ((CORRECTNESS, VALIDITY), "+ validity", 51.22),  # paper: Table 4
    ((CORRECTNESS, FORMAT, VALIDITY), "all three", 52.18),  # paper: Table 4
)

# Fig. 3(a): the SFT model's accuracy % when forced to reason first, vs answering directly
FIG3A_SFT = {"think": 37.60, "no-think": 48.54}  # paper: Fig. 3(a)
# Fig. 3(b): reasoning-answer consistency % judged by an LLM (gpt-oss-20b)
FIG3B_CONSISTENCY = {"SFT": 91.17, "SFT+GRPO": 97.98}  # paper: Fig. 3(b)
