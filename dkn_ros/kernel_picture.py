"""The deformable kernel of one pixel, as numbers and as a picture like the paper's Fig. 13.

For an output pixel p the network predicts k x k raw weights and offsets (``kernels()``
of ``dkn_ros.models.FDKN`` / ``DKN``). The deformable weighted average
(``dkn_ros.models.sampling``) then samples the network's target (the normalised,
hole-filled, bicubic-upsampled depth) bilinearly at the k^2 positions p + q + dq, with
q + dq confined to the d x d window and the image border repeated, and combines the
samples with the normalised weights:

    residual (eq. 3):  output = f_p + sum_n w_n f(s_n),  w = raw - mean(raw)   (sum 0)
    plain    (eq. 7):  output =       sum_n w_n f(s_n),  w = raw / sum(|raw|)  (sum 1)

:func:`pixel_kernel` reads all of this off the model's own code instead of re-deriving
it: the weights go through ``normalise_kernel_weights`` and the positions are what
``deformable_weighted_average`` samples (it is run on images of the x and y pixel
coordinates with one-hot weights, so window clamping and border handling are its own).
Inputs are read and prepared as by ``dkn-ros enhance`` and the node
(``dkn_ros.imageio``, ``dkn_ros.processing.prepare``, the same weights resolution), so
the kernel is the one the node computes (the picture runs the PyTorch model; the node's
ONNX engine runs the same network).

    dkn-ros kernel-picture --color rgb.png --depth depth_lr.png --pixel 320,240 \
        --output kernel.png --json kernel.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from dkn_ros import processing
from dkn_ros.models import DKN, FDKN, normalise_kernel_weights
from dkn_ros.models.dkn import PAD_AFTER, PAD_BEFORE
from dkn_ros.models.fdkn import RESAMPLE
from dkn_ros.models.sampling import deformable_weighted_average, regular_grid
from dkn_ros.visualise import colorize

__all__ = ["PixelKernel", "kernel_picture", "pixel_kernel", "raw_kernel", "render"]


@dataclass
class PixelKernel:
    """The kernel of one output pixel (positions in colour-image pixels, x right, y down;
    pixel centres at integer coordinates)."""

    pixel: tuple[int, int]  # (x, y)
    model: str
    kernel_size: int
    window: int
    residual: bool
    grid: list[tuple[float, float]]  # regular offsets q = (qx, qy), sample n = i k + j
    offsets: list[tuple[float, float]]  # predicted dq = (dx, dy), before clamping
    positions: list[tuple[float, float]]  # where sample n is read: p + clamp(q + dq)
    raw_weights: list[float]  # the network's positive weights
    weights: list[float]  # normalised as the weighted average uses them
    samples: list[float]  # target (normalised depth) at each position, bilinear
    center: float  # target at p
    output: float  # the filtered target at p (normalised)
    weight_rule: str
    weights_file: str = ""
    scale: float = 0.0
    output_depth: float = float("nan")  # ``output`` de-normalised, in ``depth_unit``
    input_depth: float = float("nan")  # the bicubic-upsampled input at p, same unit
    depth_unit: str = ""

    @property
    def weight_sum(self) -> float:
        return float(np.sum(self.weights))

    def to_json(self) -> str:
        data = asdict(self)
        data["weight_sum"] = self.weight_sum
        return json.dumps(data, indent=2) + "\n"


def raw_kernel(
    model: torch.nn.Module, guidance: torch.Tensor, target: torch.Tensor, x: int, y: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw weights (k^2,) and offsets (2 k^2,) (dx first, then dy) that ``model``
    predicts for pixel (x, y) of guidance (1, 3, H, W) and target (1, 1, H, W), exactly
    as in its forward pass.

    FDKN: its ``kernels()`` on the whole image (padded to a multiple of 4 as in
    ``forward``). DKN: its ``kernels()`` (dilated single pass) on the 50 x 50 window of
    the replicate-padded inputs that the kernel of (x, y) sees."""
    if isinstance(model, FDKN):
        height, width = target.shape[-2:]
        pad = (0, (-width) % RESAMPLE, 0, (-height) % RESAMPLE)
        if any(pad):
            guidance = F.pad(guidance, pad, mode="replicate")
            target = F.pad(target, pad, mode="replicate")
        weights, offsets = model.kernels(guidance, target)
    elif isinstance(model, DKN):
        pad = (PAD_BEFORE, PAD_AFTER, PAD_BEFORE, PAD_AFTER)
        side = PAD_BEFORE + PAD_AFTER + 1
        window = (..., slice(y, y + side), slice(x, x + side))
        guidance = F.pad(guidance, pad, mode="replicate")[window]
        target = F.pad(target, pad, mode="replicate")[window]
        weights, offsets = model.kernels(guidance, target, True)
        x = y = 0
    else:
        raise ValueError(f"expected an FDKN or DKN model, got {type(model).__name__}")
    return weights[0, :, y, x], offsets[0, :, y, x]


@torch.no_grad()
def pixel_kernel(
    model: torch.nn.Module, guidance: np.ndarray, target: np.ndarray, x: int, y: int
) -> PixelKernel:
    """The kernel of pixel (x, y).

    Args:
        model: FDKN or DKN in eval mode.
        guidance: (1, 3, H, W) float32 RGB in [0, 1] (``processing.prepare``).
        target: (1, 1, H, W) float32 normalised depth at colour size.
        x, y: the pixel, 0 <= x < W, 0 <= y < H.
    """
    height, width = target.shape[-2:]
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"pixel ({x}, {y}) is outside the {width}x{height} image")
    g = torch.from_numpy(np.ascontiguousarray(guidance, dtype=np.float32))
    t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
    raw, offsets = raw_kernel(model, g, t, x, y)
    k2 = raw.numel()
    k = int(round(k2**0.5))
    residual, window = bool(model.residual), int(model.window)

    # The sampler on [x coordinate, y coordinate, target] with one-hot weights: sample n.
    dtype = torch.float64
    xs = torch.arange(width, dtype=dtype).expand(height, width)
    ys = torch.arange(height, dtype=dtype)[:, None].expand(height, width)
    probe = torch.stack([xs, ys, t[0, 0].to(dtype)])[None]
    offsets64 = offsets.to(dtype).view(1, 2 * k2, 1, 1)
    read = []
    for n in range(k2):
        one_hot = torch.zeros(1, k2, 1, 1, dtype=dtype)
        one_hot[0, n] = 1.0
        out = deformable_weighted_average(
            probe, one_hot, offsets64, residual=False, window=window, origin=(y, x)
        )
        read.append(out[0, :, 0, 0].tolist())
    read_t = torch.tensor(read, dtype=dtype)  # (k^2, 3): x, y, f

    weights = normalise_kernel_weights(raw.to(dtype).view(1, k2, 1, 1), residual).view(k2)
    output = deformable_weighted_average(
        t.to(dtype), raw.to(dtype).view(1, k2, 1, 1), offsets64, residual=residual,
        window=window, origin=(y, x),
    )[0, 0, 0, 0].item()  # fmt: skip
    grid = regular_grid(k, dtype, torch.device("cpu"))
    return PixelKernel(
        pixel=(int(x), int(y)),
        model="fdkn" if isinstance(model, FDKN) else "dkn",
        kernel_size=k,
        window=window,
        residual=residual,
        grid=[(float(a), float(b)) for a, b in grid.T.tolist()],
        offsets=[(float(a), float(b)) for a, b in offsets.view(2, k2).T.tolist()],
        positions=[(float(a), float(b)) for a, b in read_t[:, :2].tolist()],
        raw_weights=[float(v) for v in raw.tolist()],
        weights=[float(v) for v in weights.tolist()],
        samples=[float(v) for v in read_t[:, 2].tolist()],
        center=float(t[0, 0, y, x]),
        output=float(output),
        weight_rule=(
            "residual (eq. 3): raw weights minus their mean, sum 0; output = f_p + sum w f(s)"
            if residual
            else "eq. 7: raw weights divided by their L1 norm, sum 1; output = sum w f(s)"
        ),
    )


# --------------------------------------------------------------------------- picture


def _snippet(image: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """size x size pixels centred on (x, y); outside the image the border repeats (as
    the sampler reads it)."""
    r = size // 2
    rows = np.clip(np.arange(y - r, y - r + size), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(x - r, x - r + size), 0, image.shape[1] - 1)
    return image[rows][:, cols]


def _weight_colour(value: float) -> tuple[int, int, int]:
    """-1..1 -> blue .. white .. red."""
    v = float(np.clip(value, -1.0, 1.0))
    if v >= 0:
        return (255, int(255 * (1 - v)), int(255 * (1 - v)))
    return (int(255 * (1 + v)), int(255 * (1 + v)), 255)


def render(
    color: np.ndarray,
    target: np.ndarray,
    kernel: PixelKernel,
    window_size: int | None = None,
    title: str = "",
) -> np.ndarray:
    """The picture: colour snippet | depth snippet (the network's target), each with the
    sampling positions as dots (colour = sign and size of the weight, area ~ |weight|),
    the regular grid as small crosses, the d x d window and the pixel marked; a caption
    below. Returns (H, W, 3) uint8.

    Args:
        color: (H, W, 3) uint8 RGB.
        target: (H, W) normalised depth the kernel samples.
        kernel: from :func:`pixel_kernel`.
        window_size: side of the snippets in image pixels (default d + 6).
        title: first caption line (e.g. the model and weights).
    """
    x, y = kernel.pixel
    size = int(window_size or kernel.window + 6)
    if size < 3:
        raise ValueError(f"window size must be at least 3 pixels, got {size}")
    zoom = max(4, 440 // size)
    left, top = x - size // 2, y - size // 2  # image coordinates of the snippet's corner
    snippets = [_snippet(color, x, y, size)]
    depth = _snippet(np.asarray(target, dtype=np.float32), x, y, size)
    lo, hi = float(np.min(depth)), float(np.max(depth))
    snippets.append(colorize(depth, lo, hi if hi > lo else lo + 1e-6))

    def to_picture(px: float, py: float) -> tuple[float, float]:
        return (px - left + 0.5) * zoom, (py - top + 0.5) * zoom

    peak = max(max(abs(w) for w in kernel.weights), 1e-12)
    font = ImageFont.load_default(size=max(12, min(16, zoom)))
    panels = []
    for snippet in snippets:
        big = np.repeat(np.repeat(snippet, zoom, axis=0), zoom, axis=1)
        panel = Image.fromarray(np.ascontiguousarray(big))
        draw = ImageDraw.Draw(panel)
        r = kernel.window // 2
        a, b = to_picture(x - r - 0.5, y - r - 0.5)
        c, d = to_picture(x + r + 0.5, y + r + 0.5)
        draw.rectangle([a, b, c, d], outline=(255, 255, 255), width=1)
        for qx, qy in kernel.grid:
            cx, cy = to_picture(x + qx, y + qy)
            draw.line([cx - 3, cy, cx + 3, cy], fill=(160, 160, 160), width=1)
            draw.line([cx, cy - 3, cx, cy + 3], fill=(160, 160, 160), width=1)
        order = np.argsort(np.abs(kernel.weights))  # the strongest dots on top
        for n in order:
            w = kernel.weights[n] / peak
            cx, cy = to_picture(*kernel.positions[n])
            radius = 2.0 + 0.45 * zoom * np.sqrt(abs(w))
            draw.ellipse(
                [cx - radius, cy - radius, cx + radius, cy + radius],
                fill=_weight_colour(w), outline=(0, 0, 0), width=1,
            )  # fmt: skip
        cx, cy = to_picture(x, y)
        h = zoom / 2
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], outline=(0, 0, 0), width=3)
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], outline=(0, 255, 0), width=1)
        panels.append(panel)

    unit = f" {kernel.depth_unit}" if kernel.depth_unit else ""
    lines = [
        title or f"{kernel.model.upper()} kernel",
        f"pixel (x, y) = ({x}, {y}); k = {kernel.kernel_size}, d = {kernel.window}; "
        f"left: colour, right: the network's depth input (normalised {lo:.3f}..{hi:.3f})",
        f"{kernel.weight_rule}; here sum = {round(kernel.weight_sum, 4) + 0.0:.4f}",
        f"dots: sampling positions p + q + dq, confined to the {kernel.window} x "
        f"{kernel.window} window (white square); red > 0, blue < 0 weight,",
        f"area ~ |weight| (largest |w| = {peak:.3f}); grey +: the regular grid p + q; "
        "green square: the pixel p",
        f"output at p: {kernel.output:.4f} normalised -> {kernel.output_depth:.4g}{unit}; "
        f"the bicubic input there: {kernel.input_depth:.4g}{unit}",
    ]
    gap = 8
    width = sum(p.width for p in panels) + gap * (len(panels) + 1)
    line_height = font.size + 6
    canvas = Image.new(
        "RGB", (width, panels[0].height + 2 * gap + line_height * len(lines) + gap), "white"
    )
    offset = gap
    for panel in panels:
        canvas.paste(panel, (offset, gap))
        offset += panel.width + gap
    draw = ImageDraw.Draw(canvas)
    text_y = panels[0].height + 2 * gap
    for line in lines:
        text = _fit(draw, line, font, width - 2 * gap)
        draw.text((gap, text_y), text, fill=(0, 0, 0), font=font)
        text_y += line_height
    return np.asarray(canvas)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


# --------------------------------------------------------------------------- files


def kernel_picture(
    color_path: str | Path,
    depth_path: str | Path,
    pixel: tuple[int, int],
    *,
    model: str = "fdkn",
    weights: str | Path | None = None,
    scale: int | None = None,
    downsample: int = 1,
    window_size: int | None = None,
) -> tuple[PixelKernel, np.ndarray]:
    """Read the files as ``dkn-ros enhance`` does, prepare them as the node does, and
    return the kernel of ``pixel`` (x, y in colour pixels) and its picture.

    Args:
        color_path, depth_path: the colour image and the depth (16-bit PNG mm, 8-bit PNG
            values, .npy metres or mm) at 1/s of the colour size.
        model, weights, scale: as for ``dkn-ros enhance`` (shipped weights of ``model``
            for the scale of the sizes, or an explicit weights file).
        downsample: > 1: the depth given is at colour size (e.g. ground truth); it is
            first bicubic-downsampled by this factor, as the evaluation synthesises LR.
        window_size: side of the snippets (default d + 6).
    """
    from dkn_ros.imageio import read_color, read_depth
    from dkn_ros.models.registry import load_weights

    if downsample < 1:
        raise ValueError(f"{depth_path}: --downsample must be >= 1, got {downsample}")
    color = read_color(color_path)
    depth = read_depth(depth_path)
    unit = {np.dtype(np.uint16): "mm", np.dtype(np.uint8): "(8-bit scale)"}.get(depth.dtype, "m")
    if depth.dtype == np.uint8:
        depth = depth.astype(np.float32)  # 8-bit disparity-like maps: filtered as values
    if downsample > 1:
        try:
            depth, color = _downsample(depth, color, downsample)
        except ValueError as exc:
            raise ValueError(f"{depth_path}: {exc}") from None
        unit = "m" if unit == "mm" else unit
    x, y = pixel
    height, width = color.shape[:2]
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(
            f"{color_path}: pixel ({x}, {y}) is outside the {width}x{height} colour image"
        )
    try:
        ratio = processing.infer_scale(color.shape, depth.shape)
        net, card, path = load_weights(
            model, ratio if scale is None else scale, weights, exact=scale is not None
        )
        guidance, target, depth_in = processing.prepare(
            color, depth, upsampling=card.input_upsampling
        )
    except ValueError as exc:
        raise ValueError(f"{depth_path}: {exc}") from None
    kernel = pixel_kernel(net, guidance, target, x, y)
    kernel.weights_file = str(path)
    kernel.scale = depth_in.scale
    to_unit = 1000.0 if unit == "mm" else 1.0
    out = processing.denormalise(np.float32(kernel.output), depth_in.dmin, depth_in.dmax)
    inp = processing.denormalise(target[0, 0, y, x], depth_in.dmin, depth_in.dmax)
    kernel.output_depth = float(out) * to_unit
    kernel.input_depth = float(inp) * to_unit
    kernel.depth_unit = unit
    title = (
        f"{card.model.upper()} {card.scale_name} ({path.name}) on x{depth_in.scale:.3g} input "
        f"{depth.shape[1]}x{depth.shape[0]} -> {width}x{height}"
    )
    picture = render(color, target[0, 0], kernel, window_size, title)
    return kernel, picture


def _downsample(depth: np.ndarray, color: np.ndarray, factor: int) -> tuple:
    """Crop full-size depth and colour to a multiple of ``factor`` and bicubic-downsample
    the depth (holes filled first, as the node does): float32 metres (or 8-bit values)."""
    if depth.shape != color.shape[:2]:
        raise ValueError(
            f"--downsample needs depth of the colour size {color.shape[1]}x"
            f"{color.shape[0]}, got {depth.shape[1]}x{depth.shape[0]}"
        )
    h, w = depth.shape[0] - depth.shape[0] % factor, depth.shape[1] - depth.shape[1] % factor
    depth, color = depth[:h, :w], color[:h, :w]
    processing.check_depth(depth)
    mask = processing.valid_mask(depth)
    filled = processing.fill_holes(processing.to_metres(depth), mask)
    lr = processing.bicubic_resize(filled, (h // factor, w // factor))
    return np.maximum(lr, 0.0).astype(np.float32), color
