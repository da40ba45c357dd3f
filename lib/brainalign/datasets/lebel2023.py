"""LeBel et al. 2023 (OpenNeuro ds003020): the ``DS003020`` reader and the ``lebel2023`` loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..manifests import read_manifest
from ..spaces import ROI_GROUPS, glasser_area, glasser_rois
from .base import Dataset, split_on_disk

__all__ = ["DS003020", "FSAVERAGE_FOLDER", "FSAVERAGE_ROIS", "SPACES", "load_lebel2023"]

#: where the responses of every subject projected to fsaverage are read from: the folder Study 4's released code
#: reads (``<subject>_nonc/<story>.hf5``), with the HCP-MMP1 annotations of fsaverage beside it
FSAVERAGE_FOLDER = "derivative/transformed_data_fs_lang"
#: the Glasser groups whose vertices the projection keeps (Study 4's auditory and language targets)
FSAVERAGE_ROIS = ("auditory", "LTC", "AG", "IFG", "MFG")
#: the spaces ``DS003020`` reads responses in
SPACES = ("native", "fsaverage")


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

    Spaces (``space``): ``"native"`` reads the release's responses, in each
    subject's own voxels. ``"fsaverage"`` reads every subject projected to one
    cortical surface, as Study 4 (Moussa & Toneva) fits them: the study
    projected the responses with FreeSurfer v7 and kept the vertices of its
    auditory and language regions, but did not publish the projection or its
    script. Its released code reads them from
    ``derivative/transformed_data_fs_lang/<subject>_nonc/<story>.hf5`` (30,172
    columns: 14,370 left and 15,802 right vertices), and brainalign reads the
    same files (a documented input: make them with FreeSurfer's ``mri_vol2surf``
    from the release's preprocessed volumes, or obtain them from the study's
    authors). Which vertex each column is comes from the HCP-MMP1
    annotations of fsaverage beside them (``lh.HCPMMP1.annot``,
    ``rh.HCPMMP1.annot``, as ``mne.datasets.fetch_hcp_mmp_parcellation``
    writes them): the vertices labelled with an area of :data:`FSAVERAGE_ROIS`,
    left hemisphere then right, each in vertex order (an assumption the study
    does not document; the column count is checked against the files).

    ROIs: in native space the responses are each subject's own voxels, and the
    release defines regions only as pycortex overlays
    (``derivative/pycortex-db/<subject>/overlays.svg``), which need pycortex to
    rasterize. ``rois(subject)`` reads boolean masks saved as
    ``derivative/brainalign/rois/<subject>.npz`` (one array per ROI, one entry
    per voxel of the subject's .hf5 files) and says how to make them otherwise.
    """

    name = "lebel2023"
    space = "subject-native voxels"
    shared_space = False
    #: the spaces it reads responses in (``space``)
    spaces = SPACES
    #: seconds of scan before the sound starts, and TRs dropped at each end
    lead_in: float = 10.0
    trim_start: int = 10
    trim_end: int = 5
    pad: int = 5

    def __init__(self, root: str | Path, tr: float = 2.0, split: dict | None = None, space: str = "native"):
        self.root = Path(root)
        deriv = self.root / "derivative"
        respdict = deriv / "respdict.json"
        if not respdict.exists():
            raise FileNotFoundError(
                f"{respdict} not found: {self.root} is not a ds003020-layout folder "
                "(expected derivative/respdict.json, derivative/TextGrids/, derivative/preprocessed_data/)"
            )
        if space not in SPACES:
            raise ValueError(f"unknown space {space!r} of {self.name}; valid: {list(SPACES)}")
        self.respdict: dict[str, int] = json.loads(respdict.read_text())
        self.tr = float(tr)
        self._fs_areas: np.ndarray | None = None
        self._voxels: dict[str, tuple[int, Path]] = {}  # subject -> (voxel count, the first file read with it)
        self.projected = space == "fsaverage"
        if self.projected:
            self.space, self.shared_space = "fsaverage: the auditory and language vertices (Study 4's projection)", True
            self._responses = self.root / FSAVERAGE_FOLDER
            self.subjects = self._projected_subjects()
        else:
            self._responses = pre = deriv / "preprocessed_data"
            self.subjects = sorted(p.name for p in pre.iterdir() if p.is_dir()) if pre.is_dir() else []
        grids = deriv / "TextGrids"
        self.runs = sorted(s for s in self.respdict if (grids / f"{s}.TextGrid").exists())
        self.split = split if split is not None else {"train": self.runs, "test": []}

    def _projected_subjects(self) -> list[str]:
        folder = self._responses
        missing = [p for p in [folder, *(folder / f"{h}.HCPMMP1.annot" for h in ("lh", "rh"))] if not p.exists()]
        subjects = sorted(p.name.removesuffix("_nonc") for p in folder.glob("*_nonc") if p.is_dir()) if folder.is_dir() else []
        if missing or not subjects:
            absent = ", ".join(map(str, missing)) if missing else f"every <subject>_nonc folder in {folder}"
            raise FileNotFoundError(
                f"space='fsaverage' reads every subject's responses projected to fsaverage, and {absent} "
                f"{'are' if len(missing) > 1 else 'is'} missing. Study 4 projected ds003020's preprocessed responses to fsaverage "
                "with FreeSurfer v7 and kept the vertices of its auditory and language regions; it did not publish the "
                f"projection or its script. Put them in {folder}/<subject>_nonc/<story>.hf5 (key 'data'; the columns: the "
                "vertices labelled auditory, LTC, AG, IFG or MFG, left hemisphere then right, in vertex order), with "
                f"lh.HCPMMP1.annot and rh.HCPMMP1.annot (HCP-MMP1 on fsaverage, e.g. from "
                "mne.datasets.fetch_hcp_mmp_parcellation) beside them; or use space='native'")
        return subjects

    def _path(self, subject: str, run: str) -> Path:
        return self._responses / (f"{subject}_nonc" if self.projected else subject) / f"{run}.hf5"

    def projected_areas(self) -> np.ndarray:
        """space='fsaverage': the HCP-MMP1 area (bare name, e.g. ``"A1"``) of every column of the projected responses."""
        import nibabel as nib

        if self._fs_areas is None:
            keep = {a for roi in FSAVERAGE_ROIS for a in ROI_GROUPS[roi]}
            areas = []
            for hemi in ("lh", "rh"):
                path = self._responses / f"{hemi}.HCPMMP1.annot"
                try:
                    labels, _, names = nib.freesurfer.read_annot(str(path))
                except Exception as err:  # nibabel raises several kinds on a bad file
                    raise ValueError(f"{path} is not a readable FreeSurfer annotation ({err})") from err
                names = [glasser_area(n.decode() if isinstance(n, bytes) else n) for n in names]  # mne's "L_A1_ROI-lh"
                bare = np.array([names[i] if i >= 0 else "???" for i in labels], dtype=object)
                areas.append(bare[np.isin(bare, list(keep))])
            self._fs_areas = np.concatenate(areas)
        return self._fs_areas

    def subject_runs(self, subject: str) -> list[str]:
        self._check(subject)
        return [r for r in self.runs if self._path(subject, r).exists()]

    def n_trs(self, run: str) -> int:
        """Number of response rows of a run: ``respdict[run] - 20``."""
        return self.respdict[run] - self.pad - self.trim_start - self.trim_end

    def tr_times(self, run: str) -> np.ndarray:
        from ..stimuli import tr_times

        self._check(run=run)
        n_grid = self.respdict[run] - self.pad
        return tr_times(n_grid, self.tr, start=-self.lead_in)[self.trim_start : n_grid - self.trim_end]

    def words(self, run: str) -> pd.DataFrame:
        from ..stimuli import read_textgrid

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
            raise ValueError(f"{path} is not a readable HDF5 file ({err}): delete it and fetch it again") from err
        if self.projected and data.shape[-1] != len(self.projected_areas()):
            raise ValueError(f"{path} has {data.shape[-1]} columns, but the HCP-MMP1 annotations beside it label "
                             f"{len(self.projected_areas())} fsaverage vertices with an area of {', '.join(FSAVERAGE_ROIS)}: "
                             "the projection kept other vertices, or the annotations are not fsaverage's")
        seen, first = self._voxels.setdefault(subject, (data.shape[-1], path))
        if data.shape[-1] != seen:
            raise ValueError(f"{path} has {data.shape[-1]} voxels, but {first} of the same subject has {seen}: every run of a "
                             "subject must hold the same voxels (is one file another subject's, or from another mask?); "
                             "delete the wrong one and fetch it again")
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
        from ..stimuli import read_wav

        self._check(run=run)
        path = self.root / "stimuli" / f"{run}.wav"
        if not path.exists():
            raise FileNotFoundError(f"no audio for run {run!r}: {path} is missing")
        return read_wav(path)

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks of one subject's native voxels, from ``derivative/brainalign/rois/<subject>.npz``.

        space='fsaverage': the same masks for every subject, from the columns' HCP-MMP1 areas (the regions the
        projection keeps, and "language").
        """
        if self.projected:
            masks = glasser_rois(self.projected_areas())
            return {name: mask for name, mask in masks.items() if mask.any()}
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


def load_lebel2023(root: str | Path | None = None, tr: float | None = None, space: str = "native") -> DS003020:
    """The ``lebel2023`` loader of ``load_dataset``: ``DS003020`` with the manifest's split and TR.

    ``root`` defaults to ``ds003020`` in the data home; ``tr`` (s) overrides the manifest's; ``space`` is
    ``"native"`` or ``"fsaverage"`` (Study 4's projection, a documented input: see ``DS003020``).
    """
    root = Path(root) if root is not None else config.data_home() / "ds003020"
    if not (root / "derivative" / "respdict.json").exists():
        raise FileNotFoundError(
            f"dataset 'lebel2023' (OpenNeuro ds003020) is not at {root}. It must be downloaded first "
            "(about 8-24 GB per subject): `brainalign data fetch lebel2023 --subjects UTS01` (openneuro-py), "
            "or pass root= to a folder that holds it. Offline, use dataset='simulated'."
        )
    manifest = read_manifest("lebel2023")
    ds = DS003020(root, tr=manifest["tr"] if tr is None else tr, space=space)
    ds.split = split_on_disk(manifest, ds.runs)
    return ds
