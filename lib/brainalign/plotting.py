"""Figures in one house style: seaborn layer curves and ROI bars, nilearn brain maps.

Every function takes ``simulated``: figures made from the simulated cohort say
so on the figure itself, so a reader never mistakes them for real data.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import config

__all__ = ["set_style", "mark_simulated", "layer_curves", "roi_bars", "brain_map", "to_surface"]

PALETTE = "colorblind"


def set_style() -> None:
    """The house style: white grid, colour-blind palette, readable sizes."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titleweight": "bold"})


def mark_simulated(fig_or_ax, simulated: bool) -> None:
    """Label a figure of simulated data, or of a miniature run (:func:`brainalign.config.miniature`), in its corner."""
    label = ("MINIATURE RUN: TINY RANDOM MODELS, NUMBERS MEAN NOTHING" if config.miniature()
             else "SIMULATED DATA" if simulated else None)
    if label is None:
        return
    fig = fig_or_ax if isinstance(fig_or_ax, plt.Figure) else fig_or_ax.figure
    fig.text(0.99, 0.99, label, ha="right", va="top", fontsize=8, color="0.45", fontweight="bold", alpha=0.8)


def layer_curves(
    table: pd.DataFrame,
    y: str = "score",
    hue: str | None = "roi",
    x: str = "layer",
    ax: plt.Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    simulated: bool = False,
    errorbar: tuple = ("ci", 95),
) -> plt.Axes:
    """Score per layer, one line per ``hue`` level, with a 95% CI across the other rows (e.g. subjects).

    Parameters
    ----------
    table : DataFrame
        Long format: one row per (layer, hue level, subject, ...), columns ``x``, ``y``, ``hue``.
    errorbar : tuple
        seaborn's interval: a bootstrap 95% CI by default; ``("se", 1.96)``, the normal
        interval, is instant where there are hundreds of ``x`` values.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=table, x=x, y=y, hue=hue, marker="o", errorbar=errorbar, ax=ax)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(sorted(table[x].unique()))
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title)
    if hue:
        ax.legend(title=hue, bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    mark_simulated(ax, simulated)
    return ax


def roi_bars(
    table: pd.DataFrame,
    y: str = "score",
    x: str = "roi",
    hue: str | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    simulated: bool = False,
) -> plt.Axes:
    """Mean score per ROI (bars, 95% CI across rows) with the individual rows as dots."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    sns.barplot(data=table, x=x, y=y, hue=hue, errorbar=("ci", 95), ax=ax, alpha=0.85)
    sns.stripplot(data=table, x=x, y=y, hue=hue, dodge=hue is not None, color="0.2", size=3, ax=ax,
                  legend=False)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_ylabel(ylabel or y)
    ax.tick_params(axis="x", rotation=30)
    if title:
        ax.set_title(title)
    mark_simulated(ax, simulated)
    return ax


@functools.lru_cache(maxsize=4)
def _nearest(vertices: tuple[int, ...]) -> np.ndarray:
    """For every fsLR-32k cortical grayordinate, the index of the nearest sampled vertex (on the sphere)."""
    from .spaces import fslr

    hcp = fslr()
    from scipy.spatial import cKDTree

    coords = []
    for hemi in ("left", "right"):
        xyz, _ = hcp.mesh[f"sphere_{hemi}"]
        gray = hcp.vertex_info[f"gray{hemi[0]}"]
        pts = np.asarray(xyz)[gray]
        pts = pts / np.linalg.norm(pts, axis=1, keepdims=True)
        pts[:, 0] += 0 if hemi == "left" else 10.0  # keep hemispheres apart
        coords.append(pts)
    coords = np.concatenate(coords)
    tree = cKDTree(coords[list(vertices)])
    return tree.query(coords)[1]


def to_surface(values: np.ndarray, vertices: np.ndarray) -> dict[str, np.ndarray]:
    """Values on sampled cortical grayordinates -> full fsLR-32k meshes (nearest-neighbour fill).

    Parameters
    ----------
    values : array of shape (n_voxels,)
    vertices : array of shape (n_voxels,)
        Cortical grayordinate index of every voxel (``dataset.vertices``).

    Returns
    -------
    dict with ``left`` and ``right``: arrays of shape (32492,) (nan off cortex).
    """
    from .spaces import fslr

    hcp = fslr()

    values = np.asarray(values, float)
    if values.shape != np.shape(vertices):
        raise ValueError(f"values has shape {values.shape}, expected {np.shape(vertices)} (one per voxel)")
    full = values[_nearest(tuple(int(v) for v in vertices))]
    out = {}
    for hemi, sl in (("left", hcp.struct.cortex_left), ("right", hcp.struct.cortex_right)):
        mesh = np.full(hcp.vertex_info[f"num_mesh{hemi[0]}"], np.nan)
        mesh[hcp.vertex_info[f"gray{hemi[0]}"]] = full[sl]
        out[hemi] = mesh
    return out


def brain_map(
    values: np.ndarray,
    vertices: np.ndarray,
    title: str = "",
    vmax: float | None = None,
    cmap: str = "inferno",
    threshold: float | None = None,
    simulated: bool = False,
    symmetric: bool = False,
) -> plt.Figure:
    """Lateral and medial views of both hemispheres on the inflated fsLR-32k surface (nilearn)."""
    from .spaces import fslr

    hcp = fslr()
    from nilearn import plotting

    surf = to_surface(values, vertices)
    finite = np.concatenate([v[np.isfinite(v)] for v in surf.values()])
    if vmax is None:
        vmax = float(np.nanpercentile(np.abs(finite), 99)) if finite.size else 1.0
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), subplot_kw={"projection": "3d"})
    fig.subplots_adjust(left=0.0, right=0.9, bottom=0.0, top=0.85, wspace=-0.05)
    views = [("left", "lateral"), ("left", "medial"), ("right", "medial"), ("right", "lateral")]
    for ax, (hemi, view) in zip(axes, views):
        plotting.plot_surf_stat_map(
            hcp.mesh[f"inflated_{hemi}"], np.nan_to_num(surf[hemi], nan=0.0), hemi=hemi, view=view,
            bg_map=hcp.mesh[f"sulc_{hemi}"], axes=ax, figure=fig, colorbar=False, cmap=cmap,
            vmin=-vmax if symmetric else 0.0, vmax=vmax, threshold=threshold,
        )
        ax.set_title(f"{hemi[0].upper()} {view}", fontsize=9)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-vmax if symmetric else 0.0, vmax))
    fig.colorbar(sm, cax=fig.add_axes((0.92, 0.2, 0.012, 0.5)))
    fig.suptitle(title, fontweight="bold")
    mark_simulated(fig, simulated)
    return fig
