"""Render an axial slice as RGB images: `plain`, and `zoom` (lesion patch pasted in a corner)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .config import CORNERS, BuildOptions, parse_color

Box = tuple[int, int, int, int]  # x0, y0, x1, y1; end-exclusive pixel corners


@dataclass(frozen=True)
class RenderedSlice:
    plain_png: bytes
    zoom_png: bytes
    bbox: Box  # lesion box in the written image
    zoom_box: Box  # where the patch went in the `zoom` image
    zoom_corner: str


def window_slice(ct_slice: np.ndarray, options: BuildOptions) -> np.ndarray:
    """HU slice -> uint8 grey levels: clip HU first (CT-RATE padding), then apply the window."""
    hu = np.clip(ct_slice.astype(np.float32), options.hu_clip_min, options.hu_clip_max)
    low = options.window_level - options.window_width / 2
    grey = (hu - low) * (255.0 / options.window_width)
    return np.clip(grey, 0, 255).round().astype(np.uint8)


def _scale_box(box: Box, sx: float, sy: float, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (
        max(0, int(np.floor(x0 * sx))),
        max(0, int(np.floor(y0 * sy))),
        min(width, int(np.ceil(x1 * sx))),
        min(height, int(np.ceil(y1 * sy))),
    )


def _crop_box(box: Box, width: int, height: int, options: BuildOptions) -> Box:
    """A square crop around ``box`` with margin, at least the minimum side, kept in the image."""
    x0, y0, x1, y1 = box
    longest = max(x1 - x0, y1 - y0)
    side = longest * (1 + 2 * options.zoom_margin_fraction)
    side = int(
        round(
            min(max(side, options.zoom_min_crop_fraction * min(width, height)), min(width, height))
        )
    )
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def _overlap(a: Box, b: Box) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def _corner_box(corner: str, side: int, width: int, height: int) -> Box:
    x0 = 0 if corner.endswith("left") else width - side
    y0 = 0 if corner.startswith("upper") else height - side
    return x0, y0, x0 + side, y0 + side


def choose_corner(
    lesion: Box, side: int, width: int, height: int, preferred: str
) -> tuple[str, Box]:
    """The preferred corner unless the lesion lies under it; then the first free corner
    (or, if none is free, the one covering the least of the lesion)."""
    order = [preferred] + [c for c in CORNERS if c != preferred]
    boxes = [(c, _corner_box(c, side, width, height)) for c in order]
    for corner, box in boxes:
        if _overlap(box, lesion) == 0:
            return corner, box
    return min(boxes, key=lambda cb: _overlap(cb[1], lesion))


def _png(image: Image.Image, options: BuildOptions) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=options.png_compress_level)
    return buffer.getvalue()


def _draw_box(image: Image.Image, box: Box, color: str, width: int) -> None:
    x0, y0, x1, y1 = box
    ImageDraw.Draw(image).rectangle(
        (x0, y0, x1 - 1, y1 - 1), outline=parse_color(color), width=width
    )


def render_slice(ct_slice: np.ndarray, lesion_box: Box, options: BuildOptions) -> RenderedSlice:
    """``ct_slice`` is one LPS axial slice (X, Y) in HU; ``lesion_box`` is in its view coords."""
    view = window_slice(ct_slice.T, options)  # rows = posterior axis: radiological view
    base = Image.fromarray(view)
    native_w, native_h = base.size
    crop = _crop_box(lesion_box, native_w, native_h, options)
    if options.image_size is not None and base.size != (options.image_size,) * 2:
        base = base.resize((options.image_size, options.image_size), Image.Resampling.BILINEAR)
    width, height = base.size
    sx, sy = width / native_w, height / native_h
    bbox = _scale_box(lesion_box, sx, sy, width, height)

    plain = base.convert("RGB")
    if options.plain_localisation_box:
        _draw_box(plain, bbox, options.localisation_box_color, options.localisation_box_px)

    side = max(8, int(round(options.zoom_patch_fraction * min(width, height))))
    corner, zoom_box = choose_corner(bbox, side, width, height, options.zoom_corner)
    border = options.zoom_border_px
    inner = max(1, side - 2 * border)
    patch_grey = Image.fromarray(view).crop(crop).resize((inner, inner), Image.Resampling.BICUBIC)
    patch = Image.new("RGB", (side, side), parse_color(options.zoom_border_color))
    patch.paste(patch_grey.convert("RGB"), (border, border))
    zoom = base.convert("RGB")
    if options.localisation_box:
        _draw_box(zoom, bbox, options.localisation_box_color, options.localisation_box_px)
    zoom.paste(patch, zoom_box[:2])
    return RenderedSlice(
        plain_png=_png(plain, options),
        zoom_png=_png(zoom, options),
        bbox=bbox,
        zoom_box=zoom_box,
        zoom_corner=corner,
    )
