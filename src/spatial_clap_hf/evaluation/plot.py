"""PCA picture of audio and text embeddings coloured by DoA class (the paper's figure).

Each panel projects one model's L2-normalised embeddings of the ``doa`` set onto
the first two principal components, fit jointly on audio and text points of that
panel. Colour = DoA class (left … right); marker = modality: circles for audio
clips, triangles for their spatial captions, stars for the neutral DoA prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..spatial.conventions import DEFAULT_PHRASES
from .metrics import ArrayLike, l2_normalize

__all__ = ["EmbeddingPanel", "pca_2d", "plot_embeddings_pca"]


@dataclass
class EmbeddingPanel:
    """One panel: audio (N, D) with classes (N,), texts (M, D) with classes (M,),
    optionally the K class prompts (K, D) (prompt k has class k)."""

    title: str
    audio_embeds: ArrayLike
    audio_classes: ArrayLike
    text_embeds: ArrayLike
    text_classes: ArrayLike
    prompt_embeds: ArrayLike | None = None


def pca_2d(points: ArrayLike) -> np.ndarray:
    """Project points (N, D) onto their first two principal components → (N, 2).

    Deterministic: each component's sign is fixed so that its largest-magnitude
    loading is positive. Fewer than 2 informative directions give zero columns.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"pca_2d needs points shaped (N, D) with N >= 1, got {x.shape}.")
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    comps[: min(2, vt.shape[0])] = vt[:2]
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    return xc @ comps.T


def _classes(values: ArrayLike, n: int, name: str) -> np.ndarray:
    c = np.asarray(values, dtype=np.int64).reshape(-1)
    if c.shape[0] != n:
        raise ValueError(f"{name}: {c.shape[0]} classes for {n} embeddings; give one class per embedding.")
    return c


def _draw_panel(ax, panel: EmbeddingPanel, colors: np.ndarray) -> None:
    audio = l2_normalize(panel.audio_embeds).numpy()
    text = l2_normalize(panel.text_embeds).numpy()
    parts = [audio, text]
    prompts = None
    if panel.prompt_embeds is not None:
        prompts = l2_normalize(panel.prompt_embeds).numpy()
        parts.append(prompts)
    if len({p.shape[1] for p in parts}) != 1:
        raise ValueError(f"Panel {panel.title!r}: audio and text embeddings differ in size.")
    xy = pca_2d(np.concatenate(parts, axis=0))
    n_a, n_t = audio.shape[0], text.shape[0]
    a_cls = _classes(panel.audio_classes, n_a, "audio_classes")
    t_cls = _classes(panel.text_classes, n_t, "text_classes")
    all_cls = np.concatenate([a_cls, t_cls])
    if all_cls.size and (all_cls.min() < 0 or all_cls.max() >= len(colors)):
        raise ValueError(f"Panel {panel.title!r}: DoA classes must lie in [0, {len(colors)}).")
    ax.scatter(xy[:n_a, 0], xy[:n_a, 1], c=colors[a_cls], marker="o", s=14, alpha=0.6, linewidths=0)
    t_xy = xy[n_a : n_a + n_t]
    ax.scatter(t_xy[:, 0], t_xy[:, 1], c=colors[t_cls], marker="^", s=22, alpha=0.8, edgecolors="k", linewidths=0.3)
    if prompts is not None:
        p_xy = xy[n_a + n_t :]
        p_colors = colors[np.arange(p_xy.shape[0]) % len(colors)]
        ax.scatter(p_xy[:, 0], p_xy[:, 1], c=p_colors, marker="*", s=160, edgecolors="k", linewidths=0.8)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.grid(True, alpha=0.3)


def plot_embeddings_pca(
    panels: Sequence[EmbeddingPanel],
    path: str | Path,
    class_names: Sequence[str] = DEFAULT_PHRASES.phrases,
    *,
    dpi: int = 120,
) -> Path:
    """Draw one PCA panel per entry of ``panels`` side by side and save a PNG at ``path``.

    ``class_names``: one legend label per DoA class, ordered left … right.
    Returns the written path.
    """
    if not panels:
        raise ValueError("plot_embeddings_pca needs at least one panel.")
    colors = colormaps["turbo"](np.linspace(0.1, 0.9, len(class_names)))
    fig = Figure(figsize=(4.5 * len(panels) + 1.8, 4.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel, colors)
    handles = [
        Line2D([], [], marker="s", linestyle="", color=colors[k], label=name) for k, name in enumerate(class_names)
    ]
    handles += [
        Line2D([], [], marker="o", linestyle="", color="grey", label="audio"),
        Line2D([], [], marker="^", linestyle="", color="grey", markeredgecolor="k", label="caption (sp+src)"),
        Line2D([], [], marker="*", linestyle="", color="grey", markeredgecolor="k", markersize=12, label="DoA prompt"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
