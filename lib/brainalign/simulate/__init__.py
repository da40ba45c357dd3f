"""The simulated cohorts: the embedded default datasets, with known ground truth.

Two generators, one per cohort, written as their datasets read them
(``brainalign.datasets.Simulated`` and ``SimulatedMovie``):

- ``story``: the story cohort (dataset ``simulated``, :func:`generate`): ten
  excerpts of *Moby-Dick* spoken by espeak-ng, twelve participants, TR 2 s, in
  the OpenNeuro ds003020 layout; its sources are acoustic, lexical, syntactic
  (:func:`planted_syntax`) and contextual semantic.
- ``movie``: the movie cohort (dataset ``simulated-movie``,
  :func:`generate_movie`): eleven episodes of shots and dialogue, ten
  participants, TR 1.49 s; its sources are visual, auditory, audio-visual and
  contextual semantic.
- ``common``: what both share: the generator model (``GENERATOR``), the space
  on fsLR-32k (ROIs of ``brainalign.spaces``), the participants' individual
  differences, the HRF, the noise (:func:`noise`), the sampling instant
  (``SAMPLE_AT``) and the atomic writing.

Each module's docstring gives its sources, ROIs and parameters; the names
below are re-exported here. The cohorts are deterministic given the seed and
versioned (``COHORT_VERSION``, ``MOVIE_COHORT_VERSION``).
"""

from ..spaces import ROI_GROUPS
from .common import (
    GENERATOR,
    GENERATOR_LAYER,
    HRF_PEAK_RANGE,
    INDIVIDUAL_SHARE,
    MIN_ROI_VOXELS,
    N_SEMANTIC,
    OTHER_STRIDE,
    RIGHT_LANGUAGE_FACTOR,
    ROI_SHIFT_MM,
    ROI_STRIDE,
    SAMPLE_AT,
    SNR_LOG_SD,
    TR,
    noise,
)
from .movie import (
    MOVIE_COHORT_VERSION,
    MOVIE_EV_MEDIAN,
    MOVIE_FPS,
    MOVIE_ROI_SOURCES,
    MOVIE_SIZE,
    MOVIE_SOURCES,
    MOVIE_SR,
    MOVIE_TR,
    N_GABOR,
    frames_digest,
    generate_movie,
    movie_fingerprint,
    movie_grid,
    movie_manifest,
    movie_root,
)
from .story import (
    CLAUSE_OPENERS,
    COHORT_VERSION,
    EV_MEDIAN,
    N_LEXICAL,
    ROI_SOURCES,
    SELECTIVE_FRACTION,
    SOURCES,
    STORIES,
    cohort_root,
    fingerprint,
    generate,
    manifest,
    planted_syntax,
    selective_drive,
)

__all__ = [
    # the story cohort
    "generate",
    "cohort_root",
    "fingerprint",
    "manifest",
    "planted_syntax",
    "COHORT_VERSION",
    "STORIES",
    "TR",
    "ROI_GROUPS",
    "ROI_SOURCES",
    "EV_MEDIAN",
    "SOURCES",
    "SELECTIVE_FRACTION",
    "selective_drive",
    "N_LEXICAL",
    "CLAUSE_OPENERS",
    # the movie cohort
    "generate_movie",
    "movie_root",
    "movie_grid",
    "movie_fingerprint",
    "movie_manifest",
    "frames_digest",
    "MOVIE_COHORT_VERSION",
    "MOVIE_TR",
    "MOVIE_FPS",
    "MOVIE_SIZE",
    "MOVIE_SR",
    "MOVIE_SOURCES",
    "N_GABOR",
    "MOVIE_ROI_SOURCES",
    "MOVIE_EV_MEDIAN",
    # shared: the generator model, the sampling instant, the participants, the noise
    "GENERATOR",
    "GENERATOR_LAYER",
    "N_SEMANTIC",
    "SAMPLE_AT",
    "INDIVIDUAL_SHARE",
    "ROI_SHIFT_MM",
    "HRF_PEAK_RANGE",
    "SNR_LOG_SD",
    "RIGHT_LANGUAGE_FACTOR",
    "ROI_STRIDE",
    "MIN_ROI_VOXELS",
    "OTHER_STRIDE",
    "noise",
]
