"""Shared fixtures: the local test Hub, a small synthetic source and built dataset, and
hand-made NIfTI cases.

No test reaches the internet: before any Hugging Face library is imported, HF_ENDPOINT points
at a Hub-compatible server on 127.0.0.1 (tests/hub_server/) with a throw-away HF_HOME.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .hub_server import LocalHub, free_port

HUB_PORT = free_port()
# under pytest-xdist (the README's `-n 2`): each worker's torch, and the step processes it
# starts, get their share of the cores, so that the workers do not oversubscribe them
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "HF_ENDPOINT": f"http://127.0.0.1:{HUB_PORT}",  # frozen into URL templates at import
        "HF_HUB_DISABLE_XET": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": tempfile.mkdtemp(prefix="medreason-hf-home-"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
)

import datasets.config  # noqa: E402  (after the environment above)
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

datasets.config.USE_PARQUET_EXPORT = False  # no datasets-server look-up

LPS_AFFINE = np.diag([-0.7, -0.7, 1.5, 1.0])  # nibabel (RAS) affine of an LPS-stored volume
SYNTH_CASES = 10
SYNTH_SIZE = 128
SYNTH_SLICES = 24


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, affine)
    image.header.set_slope_inter(1, 0)
    nib.save(image, path)
    return path


class HandMadeSource:
    """A ReXGroundingCT + CT-RATE folder written case by case, for exact-geometry tests."""

    def __init__(self, root: Path):
        self.root = root
        self.rex_dir = root / "rexgroundingct"
        self.ctrate_dir = root / "ct-rate"
        self.entries: list[dict] = []

    def ct_path(self, name: str) -> Path:
        parts = name.removesuffix(".nii.gz").split("_")
        folder = "valid_fixed" if parts[0] == "valid" else "train_fixed"
        patient, scan = "_".join(parts[:2]), "_".join(parts[:3])
        return self.ctrate_dir / "dataset" / folder / patient / scan / name

    def add(
        self,
        name: str,
        ct: np.ndarray,
        masks: np.ndarray,
        codes: list[str],
        ct_affine: np.ndarray = LPS_AFFINE,
        write_ct: bool = True,
    ) -> None:
        if write_ct:
            write_nifti(self.ct_path(name), ct.astype(np.int16), ct_affine)
        write_nifti(self.rex_dir / "segmentations" / name, masks.astype(np.uint8), np.eye(4))
        channels = masks[None] if masks.ndim == 3 else masks
        self.entries.append(
            {
                "name": name,
                "findings": {str(i): f"finding {i} ({c})" for i, c in enumerate(codes)},
                "entity_counts": {
                    str(i): int(len(np.unique(channels[i])) - 1)
                    for i in range(len(codes))
                    if i < len(channels)
                },
                "shape": list(ct.shape),
                "pixels": {
                    str(i): int((channels[i] > 0).sum())
                    for i in range(len(codes))
                    if i < len(channels)
                },
                "categories": {str(i): c for i, c in enumerate(codes)},
                "protocol": "protocol1",
            }
        )

    def write_index(self, extra: list[dict] | None = None) -> None:
        self.rex_dir.mkdir(parents=True, exist_ok=True)
        data = {"train": self.entries + (extra or []), "val": [], "test": []}
        (self.rex_dir / "dataset.json").write_text(json.dumps(data))


def blank_ct(shape: tuple[int, int, int] = (128, 128, 12)) -> np.ndarray:
    ct = np.full(shape, -850, dtype=np.int16)  # lung-like background
    return ct


def box_mask(
    shape: tuple[int, int, int], x: slice, y: slice, z: slice, value: int = 1
) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[x, y, z] = value
    return mask


@pytest.fixture
def hand_made(tmp_path: Path) -> HandMadeSource:
    return HandMadeSource(tmp_path / "source")


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from dataset_builder.synthetic_ct import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synthetic")
    return synthesize(
        out, SynthConfig(cases=SYNTH_CASES, seed=7, size=SYNTH_SIZE, slices=SYNTH_SLICES)
    )


@pytest.fixture(scope="session")
def built_dataset(synthetic_source: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built CT-RATE-VQA folder (both configs) from the synthetic source."""
    from dataset_builder import BuildOptions, build_repo

    out = tmp_path_factory.mktemp("built") / "ct-rate-vqa"
    build_repo(
        synthetic_source["rex_dir"],
        synthetic_source["ctrate_dir"],
        out,
        BuildOptions(seed=3),
        num_workers=2,
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def hub_server() -> LocalHub:
    hub = LocalHub(port=HUB_PORT).start()
    yield hub
    hub.stop()


@pytest.fixture
def local_hub(hub_server: LocalHub) -> LocalHub:
    """The session's test Hub, emptied and without failure rules for each test."""
    hub_server.reset()
    hub_server.clear_failures()
    return hub_server
