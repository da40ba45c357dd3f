"""The simulated movie cohort (dataset ``simulated-movie``): episodes of shots and dialogue, with known ground truth.

The movie cohort (:func:`generate_movie`, dataset ``simulated-movie``) has ten
participants, the story cohort's individual differences and space
(``brainalign.simulate.common``), the ROIs of ``spaces.MOVIE_ROI_GROUPS`` and
TR 1.49 s as in CNeuroMod. Eleven episodes of about 90 s (ten train, one test
presented four times) are built by ``stimuli.make_movie``: shots of 2-5 s of natural images that ship with
scikit-image and matplotlib, with slow pans and zooms (128 x 128 pixels, 5
frames/s), each shot with its own contrast, brightness and blur
(``stimuli.EXPOSURE``), and a dialogue of two speakers (``stimuli.read_dialogue``, two
espeak-ng voices); the face of a speaker (the astronaut or Grace Hopper
portrait) is on screen in some shots, whoever is talking. Sources, through the
HRF:

==============  ==============================================================
ROI             sources (share of the ROI's signal variance)
==============  ==============================================================
visual (V1-V4)  Gabor energy 0.8, motion energy 0.2
MT              motion energy 0.7, Gabor energy 0.3
ventral         a face on screen 0.7, Gabor energy 0.3
auditory        acoustic envelope 0.7, word rate 0.3
STS             audio-visual speech 0.6, contextual semantics 0.25, envelope 0.15
TPOJ1           audio-visual speech 0.4, motion energy 0.3, semantics 0.3
LTC (rest)      contextual semantics 0.6, word rate 0.2, audio-visual speech 0.2
AG, IFG, MFG,   contextual semantics (IFG also word rate 0.2)
PCC
motor, OFC      nothing (controls)
==============  ==============================================================

Audio-visual speech is the fraction of each TR during which the speaker whose
face is on screen is talking; the face source is the fraction of the TR with a
face on screen (from the generator's shot script), so early visual areas follow
image energy and the ventral stream what a shot shows. The image features come
from the generator's own vision model, which no study evaluates: a hand-written
V1-like bank of 12 quadrature Gabor filters (3 spatial frequencies x 4
orientations; energy per image quadrant, log-compressed, 12 principal
components) and motion energy (absolute frame-to-frame change of the grey
image and of the Gabor energy, per quadrant). Contextual semantics are the
story cohort's generator states of the dialogue (each episode read whole). The
frames are not stored: they are rendered from each episode's shot list, and a
digest checks that they are the frames the responses were simulated from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .. import config
from ..cache import digest
from ..spaces import LANGUAGE_ROIS, MOVIE_ROI_GROUPS
from . import common
from .common import GENERATOR, N_SEMANTIC, SAMPLE_AT

__all__ = ["generate_movie", "movie_root", "movie_grid", "movie_fingerprint", "movie_manifest", "frames_digest",
           "MOVIE_COHORT_VERSION", "MOVIE_TR", "MOVIE_FPS", "MOVIE_SIZE", "MOVIE_SR", "MOVIE_SOURCES", "N_GABOR",
           "MOVIE_ROI_SOURCES", "MOVIE_EV_MEDIAN"]

log = logging.getLogger(__name__)

#: bump when the movie cohort's output changes (2: word rate resampled from the words' midpoints, as in the story cohort;
#: 3: ten participants with the story cohort's individual differences, a face-driven ventral ROI, two noise-only ROIs;
#: 4: each shot has its own contrast, brightness and blur, so that image energy no longer follows the image shown;
#: 5: written on one thread, so that the bytes no longer depend on the caller's BLAS thread count)
MOVIE_COHORT_VERSION = 5
MOVIE_TR = 1.49
MOVIE_FPS = 5.0
MOVIE_SIZE = 128
MOVIE_SR = 16000
MOVIE_SOURCES = ("gabor", "motion", "face", "envelope", "word_rate", "av_speech", "semantic")
N_GABOR = 12

#: share of each movie ROI's signal variance carried by each source (motor, OFC: nothing)
MOVIE_ROI_SOURCES: dict[str, dict[str, float]] = {
    "visual": {"gabor": 0.8, "motion": 0.2},
    "MT": {"motion": 0.7, "gabor": 0.3},
    "ventral": {"face": 0.7, "gabor": 0.3},
    "auditory": {"envelope": 0.7, "word_rate": 0.3},
    "STS": {"av_speech": 0.6, "envelope": 0.15, "semantic": 0.25},
    "TPOJ1": {"av_speech": 0.4, "motion": 0.3, "semantic": 0.3},
    "LTC": {"semantic": 0.6, "word_rate": 0.2, "av_speech": 0.2},
    "AG": {"semantic": 1.0},
    "IFG": {"semantic": 0.8, "word_rate": 0.2},
    "MFG": {"semantic": 1.0},
    "PCC": {"semantic": 1.0},
}
#: median explainable variance of one presentation, per movie ROI (motor, OFC: 0)
MOVIE_EV_MEDIAN = {"visual": 0.35, "MT": 0.25, "ventral": 0.20, "auditory": 0.30, "STS": 0.22, "TPOJ1": 0.15,
                   "LTC": 0.15, "AG": 0.12, "IFG": 0.10, "MFG": 0.08, "PCC": 0.10}


def movie_manifest() -> dict:
    """The split manifest of the movie cohort: episodes, subjects, held-out subjects, repeats."""
    from ..manifests import read_manifest

    return read_manifest("simulated-movie")


def movie_root(seed: int = 0) -> Path:
    """Where the movie cohort of ``seed`` lives in the data home."""
    return config.data_home() / "simulated-movie" / f"v{MOVIE_COHORT_VERSION}-seed{int(seed)}"


def _gabor_bank(size: int, freqs=(0.06, 0.12, 0.24), n_orient: int = 4) -> np.ndarray:
    """Quadrature Gabor filters in the Fourier domain: (n_freq * n_orient, size, size), one-sided Gaussians."""
    f = np.fft.fftfreq(size)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    bank = []
    for f0 in freqs:
        for k in range(n_orient):
            theta = np.pi * k / n_orient
            cx, cy = f0 * np.cos(theta), f0 * np.sin(theta)
            bank.append(np.exp(-((fx - cx) ** 2 + (fy - cy) ** 2) / (2 * (f0 / 2.5) ** 2)))
    return np.array(bank)


def _visual_energy(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generator's V1-like vision model: Gabor energy and motion energy of every frame.

    Frames are made grey and halved in resolution (64 x 64 for 128-pixel
    frames); 12 quadrature Gabor filters (3 spatial frequencies x 4
    orientations) give local energy ``|I * g|``, averaged in the 4 quadrants
    (48 values, log-compressed). Motion energy is the mean absolute change
    from the previous frame of the grey image and of the Gabor energy, per
    quadrant (8 values; a cut gives a burst, a pan or zoom a steady level).

    Returns
    -------
    gabor : array of shape (n_frames, 48)
    motion : array of shape (n_frames, 8)
    """
    grey = frames.astype(np.float32).mean(-1) / 255.0
    n, h, w = grey.shape
    grey = grey[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))
    side = grey.shape[1]
    bank = _gabor_bank(side)
    half = side // 2

    def quadrants(x: np.ndarray) -> np.ndarray:
        q = x[..., : half * 2, : half * 2].reshape(*x.shape[:-2], 2, half, 2, half).mean((-3, -1))
        return q.reshape(len(x), -1)

    gabor, d_energy, previous = [], [], None
    for start in range(0, n, 32):  # in chunks of frames: the filtered images of a whole run would take ~1 GB
        chunk = grey[start:start + 32]
        spectrum = np.fft.fft2(chunk - chunk.mean((1, 2), keepdims=True))
        energy = np.abs(np.fft.ifft2(spectrum[:, None] * bank[None]))  # (chunk, n_filters, side, side)
        gabor.append(np.log1p(50 * quadrants(energy)))
        d_energy.append(np.abs(np.diff(energy, axis=0, prepend=energy[:1] if previous is None else previous)).mean(1))
        previous = energy[-1:]
    d_grey = np.abs(np.diff(grey, axis=0, prepend=grey[:1]))
    motion = np.concatenate([quadrants(d_grey), quadrants(np.concatenate(d_energy))], axis=1)
    return np.concatenate(gabor), motion


def _per_tr(values: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Mean of the rows of ``values`` inside each volume's box (``stimuli.frames_per_tr``; zeros where none).

    ``grid`` holds the volumes' sampling times.
    """
    from ..stimuli import frames_per_tr

    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = np.zeros((len(grid), values.shape[1]))
    for k, idx in enumerate(frames_per_tr(times, grid, MOVIE_TR)):
        if len(idx):
            out[k] = values[idx].mean(0)
    return out


def movie_grid(duration: float) -> np.ndarray:
    """Acquisition onsets of the volumes of a movie run lasting ``duration`` s: ``arange(ceil(duration / 1.49)) * 1.49``."""
    from ..stimuli import tr_times

    return tr_times(int(np.ceil(duration / MOVIE_TR)), MOVIE_TR)


def _movie_sources(movies: dict, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Every movie source on every run's TR grid, z-scored across runs: run -> name -> (n_tr, dims)."""
    from ..stimuli import audio_envelope, on_screen_at, sample_times, speaking_at, word_times

    runs = list(movies)
    semantic = common.generator_states({r: list(movies[r].words["word"]) for r in runs})
    stacked = np.concatenate(list(semantic.values()))
    mean = stacked.mean(0)
    _, _, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    pcs = vt[:N_SEMANTIC].T

    out: dict[str, dict[str, np.ndarray]] = {}
    raw_gabor = {}
    for r in runs:
        mv = movies[r]
        grid = sample_times(movie_grid(mv.duration), MOVIE_TR, SAMPLE_AT)
        gabor, motion = _visual_energy(mv.frames)
        raw_gabor[r] = _per_tr(gabor, mv.frame_times, grid)
        fine = np.arange(0.05, mv.duration, 0.1)
        env = audio_envelope(mv.audio, mv.sr, fine, window=0.1)
        talking = speaking_at(mv.words, fine)
        face = on_screen_at(mv.shots, fine)
        av = (talking != "") & (talking == face)
        w = mv.words
        mid = word_times(w)
        out[r] = {
            "motion": _per_tr(motion, mv.frame_times, grid),
            "face": _per_tr((face != "").astype(float), fine, grid),
            "envelope": _per_tr(env, fine, grid),
            "word_rate": common.lanczos(np.ones((len(w), 1)), mid, grid),
            "av_speech": _per_tr(av.astype(float), fine, grid),
            "semantic": common.lanczos((semantic[r] - mean) @ pcs, mid, grid),
        }
    cat = np.concatenate(list(raw_gabor.values()))
    mu = cat.mean(0)
    _, _, vt = np.linalg.svd(cat - mu, full_matrices=False)
    for r in runs:
        out[r]["gabor"] = (raw_gabor[r] - mu) @ vt[:N_GABOR].T
    for name in MOVIE_SOURCES:
        cat = np.concatenate([out[r][name] for r in runs])
        mu, sd = cat.mean(0), cat.std(0) + 1e-8
        for r in runs:
            out[r][name] = ((out[r][name] - mu) / sd).astype(np.float32)
    return out


def frames_digest(frames: np.ndarray) -> str:
    """The SHA-256 of a frame array's bytes: what a movie cohort records of its frames, to check them on loading."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def _write_movie_cohort(root: Path, seed: int) -> None:
    import h5py

    from ..stimuli import dialogue_episodes, make_movie, write_wav

    m = movie_manifest()
    runs = m["train"] + m["test"]
    subjects, test, n_rep = m["subjects"], m["test"][0], int(m["n_repeats"])
    (root / "stimuli").mkdir(parents=True)
    (root / "fmri").mkdir()
    (root / "brainalign").mkdir()

    log.info("building %d movie runs", len(runs))
    episodes = dialogue_episodes(runs)
    movies = {r: make_movie(episodes[r], seed=int(config.rng(seed, "movie-run", r).integers(2**31)),
                            fps=MOVIE_FPS, size=MOVIE_SIZE, sr=MOVIE_SR) for r in runs}
    digests = {}
    for r, mv in movies.items():
        write_wav(root / "stimuli" / f"{r}.wav", mv.audio, mv.sr)
        mv.words.to_csv(root / "stimuli" / f"{r}_words.tsv", sep="\t", index=False)
        mv.lines.to_csv(root / "stimuli" / f"{r}_lines.tsv", sep="\t", index=False)
        mv.shots.to_csv(root / "stimuli" / f"{r}_shots.tsv", sep="\t", index=False, float_format="%.17g")
        digests[r] = frames_digest(mv.frames)
    sources = _movie_sources(movies, seed)

    vertices, roi_index, roi_names, hemi = common.cohort_space(MOVIE_ROI_GROUPS)
    dims = {name: sources[runs[0]][name].shape[1] for name in MOVIE_SOURCES}
    participants = common.draw_participants(seed, len(subjects), vertices, hemi, MOVIE_ROI_GROUPS, MOVIE_ROI_SOURCES,
                                            MOVIE_EV_MEDIAN, dims, MOVIE_SOURCES, tag="movie", lateralized=LANGUAGE_ROIS,
                                            positive=("face", "envelope", "word_rate", "av_speech"))
    loadings = config.rng(seed, "movie-noise-loadings").standard_normal((5, len(vertices)))
    stimulus = {r: np.concatenate([sources[r][n] for n in MOVIE_SOURCES], axis=1) for r in runs}
    for k, subject in enumerate(subjects):
        with h5py.File(root / "fmri" / f"{subject}.h5", "w") as f:
            for r in runs:
                data = common.responses(common.signal(participants[k], stimulus[r], roi_names, MOVIE_TR),
                                        participants[k]["ev"], n_rep if r == test else 1, seed,
                                        ("movie-noise", subject, r), loadings, MOVIE_TR)
                f.create_dataset(r, data=data if r == test else data[0])
    truth: dict[str, np.ndarray] = {}
    for r in runs:
        truth[f"sources/{r}"] = common.hrf(stimulus[r], MOVIE_TR).astype(np.float32)
        truth[f"stimulus_sources/{r}"] = stimulus[r]
    common.write_truth_and_space(root / "brainalign", truth, MOVIE_SOURCES, dims, participants, MOVIE_ROI_SOURCES,
                                 roi_names, vertices, roi_index, hemi)
    split = {k: m[k] for k in ("version", "train", "test", "subjects", "held_out_subjects", "n_repeats")}
    split.update(seed=seed, cohort_version=MOVIE_COHORT_VERSION, generator=GENERATOR, simulated=True,
                 tr=MOVIE_TR, fps=MOVIE_FPS, frame_size=MOVIE_SIZE, sr=MOVIE_SR,
                 n_trs={r: int(len(movie_grid(movies[r].duration))) for r in runs}, frames_sha256=digests)
    (root / "brainalign" / "split.json").write_text(json.dumps(split, indent=1))


def generate_movie(seed: int = 0, root: str | Path | None = None, force: bool = False) -> Path:
    """Generate the simulated movie cohort for ``seed`` (once; later calls return its folder).

    Parameters
    ----------
    seed : int
        Seed of every random choice (shots, pauses, weights, explainable variance, noise).
    root : path, optional
        Where to write it (default: ``movie_root(seed)`` in the data home).
    force : bool
        Regenerate even if a complete cohort exists.

    Returns
    -------
    Path of the cohort folder (layout: ``brainalign.datasets.SimulatedMovie``).
    """
    root = Path(root) if root is not None else movie_root(seed)
    return common.atomic_generate(root, Path("brainalign") / "split.json", seed, force,
                                  lambda tmp, sd: _write_movie_cohort(tmp, sd))


def movie_fingerprint(root: str | Path) -> str:
    """A digest of every response file of a movie cohort (to check determinism)."""
    return digest([Path(p) for p in sorted((Path(root) / "fmri").glob("*.h5"))])
