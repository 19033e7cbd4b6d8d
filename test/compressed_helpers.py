"""sensor_msgs/CompressedImage made exactly as image_transport's plugins make them, written
here from their public format (not with the decoder under test):

* compressed_image_transport: ``format = "<encoding>; jpeg compressed bgr8"`` (or png);
  colour is converted to BGR before ``cv2.imencode``; grey keeps its one channel and the
  format ends with ``"compressed "``.
* compressed_depth_image_transport: ``format = "<encoding>; compressedDepth png|rvl"``,
  ``data`` = ConfigHeader (int32 format 0 = INV_DEPTH, float32 depthQuantA, float32
  depthQuantB; native = little-endian) + payload. 32FC1 depth is quantised as inverse
  depth: A = Z0 * (Z0 + 1), B = 1 - A / depth_max, q = (uint16)(A / d + B) for
  d < depth_max, else 0 (NaN included); 16UC1 values above depth_max * 1000 become 0.
  RVL payload: uint32 cols, uint32 rows, then the RVL words (Wilson 2017).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

DEPTH_MAX = 10.0  # the plugin's default depth_max, m
DEPTH_QUANTIZATION = 100.0  # the plugin's default depth_quantization (Z0)


def quantisation() -> tuple[float, float]:
    """(depthQuantA, depthQuantB) as the plugin computes them, in float32."""
    z0, dmax = np.float32(DEPTH_QUANTIZATION), np.float32(DEPTH_MAX)
    a = np.float32(z0 * (z0 + np.float32(1.0)))
    b = np.float32(np.float32(1.0) - a / dmax)
    return float(a), float(b)


def jpeg_or_png(image: np.ndarray, encoding: str, codec: str = "jpeg") -> tuple[str, bytes]:
    """(format, data) of compressed_image_transport for an 8-bit image in ``encoding``."""
    fmt = f"{encoding}; {codec} compressed "
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        # The plugin converts colour to bgr8 (alpha dropped) and names it.
        to_bgr = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGR,
                  "bgra8": cv2.COLOR_BGRA2BGR}  # fmt: skip
        image = cv2.cvtColor(image, to_bgr[encoding]) if encoding in to_bgr else image
        fmt += "bgr8"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", image, params)
    assert ok
    return fmt, data.tobytes()


def _rvl_encode(values: np.ndarray) -> bytes:
    """RVL words of uint16 ``values`` (row-major), as RvlCodec::CompressRVL writes them."""
    words: list[int] = []
    state = {"word": 0, "nibbles": 0}

    def vle(value: int) -> None:
        while True:
            nibble = value & 0x7
            value >>= 3
            if value:
                nibble |= 0x8
            state["word"] = ((state["word"] << 4) | nibble) & 0xFFFFFFFF
            state["nibbles"] += 1
            if state["nibbles"] == 8:
                words.append(state["word"])
                state["word"], state["nibbles"] = 0, 0
            if not value:
                return

    flat = [int(v) for v in values.reshape(-1)]
    i, previous = 0, 0
    while i < len(flat):
        zeros = 0
        while i < len(flat) and flat[i] == 0:
            i, zeros = i + 1, zeros + 1
        vle(zeros)
        nonzeros = 0
        while i + nonzeros < len(flat) and flat[i + nonzeros] != 0:
            nonzeros += 1
        vle(nonzeros)
        for _ in range(nonzeros):
            delta = flat[i] - previous
            vle(((delta << 1) ^ (delta >> 31)) & 0xFFFFFFFF)
            previous = flat[i]
            i += 1
    if state["nibbles"]:
        words.append((state["word"] << 4 * (8 - state["nibbles"])) & 0xFFFFFFFF)
    return struct.pack(f"<{len(words)}I", *words)


def compressed_depth(depth: np.ndarray, encoding: str, codec: str = "png") -> tuple[str, bytes]:
    """(format, data) of compressed_depth_image_transport for 16UC1 mm or 32FC1 m depth."""
    quant_a, quant_b = 0.0, 0.0
    if encoding == "32FC1":
        quant_a, quant_b = quantisation()
        d = depth.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.float32(quant_a) / d + np.float32(quant_b)
        values = np.where(d < DEPTH_MAX, q, 0).astype(np.uint16)  # NaN < max is False
    else:
        values = np.where(depth > int(DEPTH_MAX * 1000), 0, depth).astype(np.uint16)
    if codec == "png":
        ok, png = cv2.imencode(".png", values, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok
        payload = png.tobytes()
    else:
        rows, cols = values.shape
        payload = struct.pack("<II", cols, rows) + _rvl_encode(values)
    header = struct.pack("<iff", 0, quant_a, quant_b)
    return f"{encoding}; compressedDepth {codec}", header + payload
