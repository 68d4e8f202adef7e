"""PNG figures of the evaluate stage (report images and the embedding map that `dvc plots` shows).

Headless (Agg) and byte-stable: no timestamps or library versions in the PNG metadata.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from stages.common.outputs import atomic_file  # noqa: E402

# Class names may be Japanese: DejaVu Sans for Latin text, falling back to a CJK font for the rest.
# matplotlib-fontja bundles IPAexGothic so figures render the same on machines without CJK fonts.
CJK_FONTS = ("IPAexGothic", "Noto Sans CJK JP", "Noto Sans JP", "IPAGothic", "TakaoGothic", "Hiragino Sans")
DPI = 100


def _configure_fonts() -> None:
    try:
        from matplotlib_fontja import get_font_ttf_path

        font_manager.fontManager.addfont(get_font_ttf_path())
    except ImportError:  # optional: without it Japanese class names may render as boxes
        pass
    installed = {font.name for font in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = ["DejaVu Sans", *[name for name in CJK_FONTS if name in installed]]


_configure_fonts()


def save_png(figure, path: str | Path) -> None:
    with atomic_file(path) as tmp, warnings.catch_warnings():
        # Only without any CJK font: Japanese text renders as boxes, the figure is still valid.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    plt.close(figure)


def class_colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def confusion_figure(matrix: np.ndarray, names: list[str], title: str):
    size = max(4.0, 0.7 * len(names) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    return figure


def curves_figure(curves: dict[int, pd.DataFrame], names: list[str], x: str, y: str, title: str,
                  scores: dict[int, float], score_name: str, diagonal: bool, drawstyle: str = "default"):
    """Overlaid curves, one per class; PR curves step (precision holds until the next recall), ROC joins corners."""
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    colors = class_colors(len(names))
    for index, frame in curves.items():
        label = f"{names[index]} ({score_name} {scores[index]:.3f})" if index in scores else names[index]
        axes.plot(frame[x], frame[y], drawstyle=drawstyle, color=colors[index], label=label)
    if diagonal:
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel=x, ylabel=y, title=title)
    axes.legend(loc="lower right" if diagonal else "lower left", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def reliability_figure(table: pd.DataFrame, bins: int, ece: float):
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 5.5), sharex=True, height_ratios=(3, 1))
    width = 1.0 / bins
    centers = (table["lower"] + table["upper"]) / 2
    top.bar(centers, table["accuracy"], width=width * 0.9, color="#4c72b0", label="accuracy in bin")
    top.plot(table["confidence"], table["accuracy"], "o", color="#dd8452", label="(mean confidence, accuracy)")
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    top.set(ylim=(0, 1.02), ylabel="accuracy", title=f"Reliability diagram (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(centers, table["count"], width=width * 0.9, color="grey")
    bottom.set(xlim=(0, 1), xlabel="confidence of the predicted class", ylabel="texts")
    return figure


def lengths_figure(lengths: dict[str, np.ndarray]):
    figure, axes = plt.subplots(figsize=(6, 3.5))
    longest = max((int(v.max()) for v in lengths.values() if len(v)), default=1)
    edges = np.linspace(0, longest + 1, min(40, longest + 2))
    for name, values in lengths.items():
        axes.hist(values, bins=edges, histtype="step", linewidth=1.5, density=True, label=f"{name} ({len(values)})")
    axes.set(xlabel="characters per text", ylabel="share of texts", title="Text length distribution")
    axes.legend(fontsize="small")
    return figure


def embedding_map_figure(points: np.ndarray, labels: np.ndarray, names: list[str], title: str):
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    colors = class_colors(len(names))
    for index, name in enumerate(names):
        members = labels == index
        axes.scatter(points[members, 0], points[members, 1], s=8, alpha=0.7, color=colors[index],
                     label=f"{name} ({int(members.sum())})", linewidths=0)
    axes.set(title=title, xticks=[], yticks=[])
    axes.legend(fontsize="small", markerscale=2)
    return figure
