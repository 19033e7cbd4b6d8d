"""Plot a run's curves (``log.csv`` and ``val.csv``) as one SVG, with no plotting
library: the training loss (a running mean over 50 iterations, log scale) and the
validation RMSE of the model and of its input.

    python -m training.plot runs/fdkn_x8            # writes runs/fdkn_x8/curves.svg
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

__all__ = ["write_curves"]

WIDTH, HEIGHT, MARGIN = 720, 300, 56
SMOOTH = 50  # iterations in the loss's running mean


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _panel(x0: float, title: str, series: list[tuple[str, str, np.ndarray, np.ndarray]],
           log_y: bool) -> list[str]:  # fmt: skip
    """SVG elements of one panel: axes box, title, min/max labels and polylines."""
    width = (WIDTH - 3 * MARGIN) / 2
    top, bottom = MARGIN / 2, HEIGHT - MARGIN
    xs = np.concatenate([s[2] for s in series]) if series else np.zeros(1)
    ys = np.concatenate([s[3] for s in series]) if series else np.ones(1)
    ys = ys[np.isfinite(ys) & ((ys > 0) if log_y else True)]
    if ys.size == 0:
        ys = np.ones(1)
    fy = np.log10 if log_y else (lambda v: v)
    y_lo, y_hi = float(fy(ys.min())), float(fy(ys.max()))
    x_lo, x_hi = float(xs.min()), float(xs.max())
    y_hi, x_hi = max(y_hi, y_lo + 1e-9), max(x_hi, x_lo + 1)

    def point(x: float, y: float) -> str:
        px = x0 + (x - x_lo) / (x_hi - x_lo) * width
        py = bottom - (float(fy(y)) - y_lo) / (y_hi - y_lo) * (bottom - top)
        return f"{px:.1f},{py:.1f}"

    fmt = (lambda v: f"{10**v:.3g}") if log_y else (lambda v: f"{v:.3g}")
    out = [
        f'<rect x="{x0}" y="{top}" width="{width:.1f}" height="{bottom - top}" fill="none" '
        'stroke="#888"/>',
        f'<text x="{x0}" y="{top - 6}" font-size="13">{title}</text>',
        f'<text x="{x0 - 4}" y="{top + 10}" font-size="10" text-anchor="end">{fmt(y_hi)}</text>',
        f'<text x="{x0 - 4}" y="{bottom}" font-size="10" text-anchor="end">{fmt(y_lo)}</text>',
        f'<text x="{x0}" y="{bottom + 14}" font-size="10">{x_lo:.0f}</text>',
        f'<text x="{x0 + width}" y="{bottom + 14}" font-size="10" text-anchor="end">'
        f"{x_hi:.0f} iterations</text>",
    ]
    for n, (label, colour, x, y) in enumerate(series):
        keep = np.isfinite(y) & ((y > 0) if log_y else True)
        points = " ".join(point(a, b) for a, b in zip(x[keep], y[keep], strict=True))
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{x0 + width - 4}" y="{top + 14 + 13 * n}" font-size="11" '
            f'text-anchor="end" fill="{colour}">{label}</text>'
        )
    return out


def write_curves(run_dir: str | Path, title: str = "") -> Path:
    """Write ``run_dir/curves.svg`` from ``log.csv`` and ``val.csv``; returns its path."""
    run_dir = Path(run_dir)
    log, val = _read(run_dir / "log.csv"), _read(run_dir / "val.csv")
    series_loss = []
    if log:
        it = np.array([float(r["iteration"]) for r in log])
        loss = np.array([float(r["loss"]) for r in log])
        window = min(SMOOTH, len(loss))
        mean = np.convolve(loss, np.ones(window) / window, mode="valid")
        series_loss.append((f"L1 loss, mean of {window}", "#1f77b4", it[window - 1 :], mean))
    series_val = []
    if val:
        it = np.array([float(r["iteration"]) for r in val])
        # Logs of older runs name the columns val_rmse_mm / bicubic_rmse_mm.
        ours = [r.get("val_rmse") or r.get("val_rmse_mm") for r in val]
        given = [r.get("input_rmse") or r.get("bicubic_rmse_mm") for r in val]
        unit = val[-1].get("unit", "mm")
        series_val.append((f"model ({unit})", "#d62728", it, np.array(ours, dtype=float)))
        series_val.append((f"input ({unit})", "#7f7f7f", it, np.array(given, dtype=float)))
    body = _panel(MARGIN, "training loss", series_loss, log_y=True)
    body += _panel(2 * MARGIN + (WIDTH - 3 * MARGIN) / 2, "validation RMSE", series_val, False)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" font-size="12" text-anchor="middle">'
        f"{title or run_dir.name}</text>" + "".join(body) + "</svg>\n"
    )
    path = run_dir / "curves.svg"
    path.write_text(svg)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m training.plot RUN_DIR (a folder with log.csv / val.csv)")
        return 2
    print(write_curves(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
