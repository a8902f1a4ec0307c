"""Uploads -> the image the model gets, with the dataset builder's own code.

A NIfTI CT is read as the builder reads it (``dataset_builder.volumes``: one read, LPS order,
HU as stored); with a ReXGroundingCT mask (F, H, W, D) both go through ``load_case_volumes``,
so the mask is indexed on the CT's voxel grid (its identity affine is never used). Lesion boxes
come from ``dataset_builder.lesions.finding_candidates`` (the finding's largest connected
component on the slice, above the paper's size threshold); the windowed slice and the `zoom` /
`plain` images from ``dataset_builder.render``. A PNG/JPEG upload is taken as an already
windowed slice: its grey levels pass through ``render_slice`` unchanged. What the builder
skips, the Space refuses with its reason (e.g. a CT or mask with NaN or infinite voxels, which
``read_nifti`` refuses).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform
from PIL import Image, ImageDraw, UnidentifiedImageError

from common.errors import UserError
from dataset_builder.config import VARIANTS, BuildOptions
from dataset_builder.lesions import LesionCandidate, finding_candidates
from dataset_builder.qa_rows import question_for
from dataset_builder.render import Box, RenderedSlice, render_slice, window_slice
from dataset_builder.sources import CaseError, CaseSpec, case_id_of
from dataset_builder.volumes import LPS, load_case_volumes, read_nifti

_BUILD_DEFAULTS = BuildOptions()
WINDOWS = {  # preset -> (level, width) in HU
    "lung": (_BUILD_DEFAULTS.window_level, _BUILD_DEFAULTS.window_width),  # ours: the dataset's
    "mediastinum": (40.0, 400.0),  # ours: the standard mediastinal window (level 40, width 400)
}
DEFAULT_WINDOW = "lung"  # ours: the window CT-RATE-VQA is built with (BuildOptions defaults)
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG
BOX_COLOR = (255, 0, 0)  # the picker's box: the builder's localisation red
CLICK_COLOR = (255, 255, 0)  # the picker's first corner, before the second click


class UploadError(UserError):
    """An upload or a choice that cannot be used; the message (one line) says what to do."""


@dataclass
class Scan:
    """An upload on its own voxel grid: a CT (with optional masks) or a single windowed image."""

    name: str
    ct: np.ndarray | None = None  # (X, Y, Z) HU in LPS order; ct[:, :, k].T is the view
    masks: np.ndarray | None = None  # (F, X, Y, Z) instance labels on the CT grid
    image: np.ndarray | None = None  # (H, W) uint8 grey view of a PNG/JPEG upload
    candidates: dict[int, dict[int, LesionCandidate]] = field(default_factory=dict)

    @property
    def slices(self) -> int:
        return 1 if self.ct is None else int(self.ct.shape[2])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the native view."""
        if self.ct is None:
            return int(self.image.shape[1]), int(self.image.shape[0])
        return int(self.ct.shape[0]), int(self.ct.shape[1])

    def finding_slices(self, finding: int) -> list[int]:
        return sorted(self.candidates.get(finding, {}))


def window_options(window: str, options: BuildOptions = _BUILD_DEFAULTS) -> BuildOptions:
    if window not in WINDOWS:
        raise UploadError(f"window {window!r}: choose one of {', '.join(WINDOWS)}")
    level, width = WINDOWS[window]
    return dataclasses.replace(options, window_level=level, window_width=width)


def _check_file(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise UploadError(f"no {what} uploaded: upload a file")
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"{what} {path.name} cannot be read: upload it again")
    if path.stat().st_size == 0:
        raise UploadError(f"{what} {path.name} is empty (0 bytes): upload the complete file")
    return path


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except (OSError, UnidentifiedImageError) as err:
        raise UploadError(
            f"image {path.name} cannot be decoded ({err}): upload a PNG or JPEG"
        ) from None


def _read_ct(path: Path) -> np.ndarray:
    """The CT alone, exactly as ``load_case_volumes`` reads and orients it."""
    header, ct, _ = read_nifti(path.name, path, "CT volume")
    if ct.ndim != 3:
        raise CaseError(path.name, f"CT has {ct.ndim} dimensions, expected 3 (X, Y, Z)")
    if not (np.issubdtype(ct.dtype, np.integer) or np.issubdtype(ct.dtype, np.floating)):
        raise CaseError(path.name, f"CT has unsupported dtype {ct.dtype}")
    ornt = ornt_transform(io_orientation(header.get_best_affine()), axcodes2ornt(LPS))
    return apply_orientation(ct, ornt)


def load_scan(
    ct_path: str | Path | None,
    mask_path: str | Path | None = None,
    options: BuildOptions = _BUILD_DEFAULTS,
) -> Scan:
    """Read an upload; raise UploadError (one line) for anything that cannot be used."""
    ct_file = _check_file(ct_path, "scan")
    mask_file = None if mask_path is None else _check_file(mask_path, "mask")
    if ct_file.read_bytes()[:8].startswith(IMAGE_MAGIC):
        if mask_file is not None:
            raise UploadError(
                f"mask {mask_file.name} needs a NIfTI CT, but {ct_file.name} is a 2-D image: "
                "upload the CT volume (.nii.gz) or remove the mask"
            )
        return Scan(name=ct_file.name, image=_read_image(ct_file))
    try:
        if mask_file is None:
            return Scan(name=ct_file.name, ct=_read_ct(ct_file))
        spec = CaseSpec(
            name=ct_file.name,
            case_id=case_id_of(ct_file.name),
            patient_id="upload",
            source_split="upload",
            ct_path=ct_file,
            mask_path=mask_file,
        )
        volumes = load_case_volumes(spec)
    except CaseError as err:
        raise UploadError(err.reason.replace("\n", " ")) from None
    scan = Scan(name=ct_file.name, ct=volumes.ct, masks=volumes.masks)
    for index, channel in enumerate(volumes.masks):
        found = finding_candidates(channel, index, options)
        scan.candidates[index] = {c.slice_index: c for c in found}
    return scan


def finding_box(scan: Scan, finding: int, slice_index: int) -> Box:
    """The builder's box of ``finding`` on ``slice_index`` (its largest qualifying lesion)."""
    if scan.masks is None:
        raise UploadError("no mask uploaded: upload one, or draw a box on the image")
    if not 0 <= finding < scan.masks.shape[0]:
        raise UploadError(f"finding {finding}: the mask has {scan.masks.shape[0]} finding(s)")
    candidate = scan.candidates.get(finding, {}).get(slice_index)
    if candidate is None:
        slices = scan.finding_slices(finding)
        where = f"slices {slices[0]}-{slices[-1]}" if slices else "no slice"
        raise UploadError(
            f"finding {finding} has no lesion above the dataset's size threshold on slice "
            f"{slice_index} (it has one on {where}): move the slider or draw a box"
        )
    return candidate.box


def parse_box(text: str, scan: Scan) -> Box:
    """``x0, y0, x1, y1`` (end-exclusive view pixels) inside the scan's view."""
    try:
        x0, y0, x1, y1 = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UploadError(
            f"box {text!r}: give four whole numbers x0, y0, x1, y1 (or click two corners)"
        ) from None
    width, height = scan.size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise UploadError(
            f"box {text!r} is not inside the {width} x {height} slice with x0 < x1 and y0 < y1"
        )
    return x0, y0, x1, y1


def box_from_clicks(first: tuple[int, int], second: tuple[int, int]) -> Box:
    """Two clicked pixels -> the end-exclusive box that holds both."""
    (ax, ay), (bx, by) = first, second
    return min(ax, bx), min(ay, by), max(ax, bx) + 1, max(ay, by) + 1


def _check_slice(scan: Scan, slice_index: int) -> None:
    if not 0 <= slice_index < scan.slices:
        raise UploadError(f"slice {slice_index}: the scan has slices 0-{scan.slices - 1}")


def slice_view(scan: Scan, slice_index: int, options: BuildOptions) -> np.ndarray:
    """The windowed slice (H, W) uint8 in the radiological view, as the builder windows it."""
    _check_slice(scan, slice_index)
    if scan.ct is None:
        return scan.image
    return window_slice(scan.ct[:, :, slice_index].T, options)


def picker_image(
    scan: Scan,
    slice_index: int,
    options: BuildOptions,
    box: Box | None = None,
    click: tuple[int, int] | None = None,
) -> Image.Image:
    """The slice to click on, with the chosen box (red) and a pending first corner (yellow)."""
    image = Image.fromarray(slice_view(scan, slice_index, options)).convert("RGB")
    draw = ImageDraw.Draw(image)
    if box is not None:
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=BOX_COLOR)
    if click is not None:
        x, y = click
        draw.rectangle((x - 1, y - 1, x + 1, y + 1), fill=CLICK_COLOR)
    return image


def image_as_hu(view: np.ndarray, options: BuildOptions) -> tuple[np.ndarray, BuildOptions]:
    """An already windowed grey view -> (an LPS HU slice, options) that ``render_slice`` windows
    back to exactly the same grey levels (the HU clip widened to the window)."""
    low = options.window_level - options.window_width / 2
    hu = low + view.astype(np.float64) * (options.window_width / 255.0)
    opts = dataclasses.replace(options, hu_clip_min=low, hu_clip_max=low + options.window_width)
    return hu.T, opts


def render(scan: Scan, slice_index: int, box: Box, options: BuildOptions) -> RenderedSlice:
    """Both renderings of the slice with the lesion ``box``, by ``render_slice`` itself."""
    _check_slice(scan, slice_index)
    if scan.ct is None:
        hu, opts = image_as_hu(scan.image, options)
        return render_slice(hu, box, opts)
    return render_slice(scan.ct[:, :, slice_index], box, options)


def model_input(
    rendered: RenderedSlice, variant: str, class_names: list[str] | tuple[str, ...]
) -> tuple[bytes, str]:
    """(PNG bytes, question) of the dataset row this rendering would make in ``variant``."""
    if variant not in VARIANTS:
        raise UploadError(f"rendering {variant!r}: choose one of {', '.join(VARIANTS)}")
    png = rendered.zoom_png if variant == "zoom" else rendered.plain_png
    return png, question_for(variant, list(class_names), rendered.zoom_corner)
