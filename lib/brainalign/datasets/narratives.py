"""Narratives (Nastase et al. 2021, OpenNeuro ds002345): the ``Narratives`` reader and the ``narratives`` loader."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..manifests import read_manifest
from ..spaces import glasser_rois, glasser_subregions
from .base import Dataset, split_on_disk

__all__ = ["Narratives", "load_narratives"]

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
        stimuli/<task>_audio.wav    the audio, from the scan's start (``audio`` cuts it to the story)
        stimuli/oota2023/<task>_probing_labels.csv   optional: the per-word labels Study 1 released (21styear)

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
        from ..stimuli import tr_times

        self._check(run=run)
        return tr_times(self._story[run][2], self.tr)

    def words(self, run: str) -> pd.DataFrame:
        from ..stimuli import read_align_csv

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

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        """The story's audio, from its onset to its end: ``stimuli/<task>_audio.wav`` cut to the story.

        The file plays from the scan's start (``21styear``: music, then the story 21 s in), so the
        story's samples are those of ``[onset, onset + duration)`` TRs of ``code/event_meta.json``, and
        time 0 is the story onset, as for :meth:`words` and :meth:`tr_times`.
        """
        from ..stimuli import read_wav

        self._check(run=run)
        task, onset, duration = self._story[run]
        path = self.root / "stimuli" / f"{task}_audio.wav"
        if not path.is_file():
            raise FileNotFoundError(f"no audio for run {run!r}: {path} is missing; `brainalign data fetch narratives "
                                    f"--runs {task}` fetches it")
        audio, sr = read_wav(path)
        start, stop = int(round(onset * self.tr * sr)), int(round((onset + duration) * self.tr * sr))
        if len(audio) < stop:
            raise ValueError(f"{path} lasts {len(audio) / sr:.1f} s, but story {run!r} ends {stop / sr:.1f} s into the scan "
                             "(code/event_meta.json)")
        return audio[start:stop], sr

    def study_labels(self, run: str) -> pd.DataFrame | None:
        """The per-word property labels Oota et al. (2023) released for this story, or None when not on disk.

        ``brainalign data fetch narratives --runs 21styear`` fetches them (the study labelled
        21styear only); :func:`brainalign.probing.read_study_labels` reads them in the classes of
        ``probing.property_labels(classes="study")``, one row per word of :meth:`words`.
        """
        from ..probing import read_study_labels

        self._check(run=run)
        task = self._story[run][0]
        path = self.root / "stimuli" / "oota2023" / f"{task}_probing_labels.csv"
        if not path.is_file():
            return None
        if sum(t == task for t, _, _ in self._story.values()) > 1:
            raise ValueError(f"{path} labels the whole task {task!r}, which holds several stories; label run {run!r} yourself")
        return read_study_labels(path, list(self.words(run)["word"]))

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
                raise ValueError(f"{path} is not a readable GIfTI file ({err}): delete it and fetch it again") from err
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


def load_narratives(root: str | Path | None = None, runs: Sequence[str] | None = None,
                    subjects: Sequence[str] | None = None, pipeline: str = "afni-nosmooth") -> Narratives:
    """The ``narratives`` loader of ``load_dataset``: ``Narratives`` with the manifest's split.

    ``root`` defaults to ``narratives`` in the data home; ``runs``, ``subjects`` and ``pipeline`` go to ``Narratives``.
    """
    root = Path(root) if root is not None else config.data_home() / "narratives"
    if not (root / "code" / "event_meta.json").exists():
        raise FileNotFoundError(
            f"dataset 'narratives' (Nastase et al. 2021) is not at {root}. It must be downloaded first with DataLad "
            "(about 0.9 GB per subject and story of 56 min): `brainalign data fetch narratives` gets the 21styear "
            "story for the 18 subjects of Oota et al. 2023; or pass root=. Offline, use dataset='simulated'."
        )
    manifest = read_manifest("narratives")
    ds = Narratives(root, runs=runs, subjects=subjects, pipeline=pipeline)
    ds.split = split_on_disk(manifest, ds.runs)
    return ds
