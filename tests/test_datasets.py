"""The dataset loaders, on small fixtures written by the tests in the exact on-disk formats.

Every loader (the simulated cohort, ds003020, Narratives, the Algonauts release of CNeuroMod) is run
through the same contract test.
"""

import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign import cli, datasets, features
from brainalign.datasets import (
    DS003020,
    ROI_GROUPS,
    Narratives,
    NeuroMod,
    glasser_area,
    glasser_rois,
    load_dataset,
    read_manifest,
    read_schaefer_labels,
    read_transcript_tsv,
    schaefer_rois,
)
from brainalign.stimuli import NONWORDS, SAMPLE_AT, word_times, write_textgrid

FIXTURES = Path(__file__).parent / "fixtures"
REAL_RESPDICT = json.loads((FIXTURES / "ds003020_respdict.json").read_text())  # the real derivative/respdict.json


# -- fixture writers ------------------------------------------------------------------
def _words_with_nonwords(n: int, start: float, step: float = 1.1) -> pd.DataFrame:
    """Alternating words and the silence / noise labels the Huth lab's TextGrids carry."""
    labels = ["sp", "so", "br", "it", "ns", "began", "sentence_start", "again", "lg"]
    rows = [(labels[i % len(labels)], start + i * step, start + i * step + step * 0.9) for i in range(n)]
    return pd.DataFrame(rows, columns=["word", "onset", "offset"])


@pytest.fixture
def ds003020(tmp_path):
    """Two stories, two subjects; the test story holds 3 repeats stacked as (R * T, V)."""
    deriv = tmp_path / "derivative"
    respdict = {"souls": 40, "wheretheressmoke": 36}
    (deriv / "TextGrids").mkdir(parents=True)
    (deriv / "respdict.json").write_text(json.dumps(respdict))
    words = pd.DataFrame({"word": ["so", "sp", "it", "began"], "onset": [0.5, 0.9, 1.2, 1.5],
                          "offset": [0.9, 1.2, 1.5, 2.0]})
    for story in respdict:
        write_textgrid(deriv / "TextGrids" / f"{story}.TextGrid", words, duration=60.0)
    rng = np.random.default_rng(0)
    for subject in ("UTS01", "UTS02"):
        (deriv / "preprocessed_data" / subject).mkdir(parents=True)
        with h5py.File(deriv / "preprocessed_data" / subject / "souls.hf5", "w") as f:
            f.create_dataset("data", data=rng.standard_normal((40 - 20, 7)))
        with h5py.File(deriv / "preprocessed_data" / subject / "wheretheressmoke.hf5", "w") as f:
            f.create_dataset("resp", data=rng.standard_normal((3 * (36 - 20), 7)))  # older key
    return tmp_path


@pytest.fixture
def lebel_real(tmp_path):
    """ds003020 with three of the real respdict.json entries, real sizes of the time axis, a few voxels.

    UTS01 has all three stories (the test story as 10 stacked repeats, 3-D), UTS02 lacks ``life``
    and stores its repeats 2-D; UTS09 (newer releases) has one story.
    """
    root = tmp_path / "ds003020"
    deriv = root / "derivative"
    stories = ["souls", "life", "wheretheressmoke"]
    respdict = {s: REAL_RESPDICT[s] for s in stories}
    (deriv / "TextGrids").mkdir(parents=True)
    (deriv / "respdict.json").write_text(json.dumps(respdict))
    for story in stories:
        n_grid = respdict[story] - 5
        words = _words_with_nonwords(40, start=3.0, step=(n_grid * 2.0 - 40) / 40)
        phones = pd.DataFrame({"phone": ["S", "OW1"], "onset": [3.0, 3.2], "offset": [3.2, 3.5]})
        write_textgrid(deriv / "TextGrids" / f"{story}.TextGrid", words, phones, duration=n_grid * 2.0)
    rng = np.random.default_rng(1)
    n_vox = 9
    layout = {"UTS01": stories, "UTS02": ["souls", "wheretheressmoke"], "UTS09": ["souls"]}
    for subject, have in layout.items():
        (deriv / "preprocessed_data" / subject).mkdir(parents=True)
        for story in have:
            n = respdict[story] - 20
            if story == "wheretheressmoke":
                data = rng.standard_normal((10, n, n_vox))
                if subject == "UTS02":
                    data = data.reshape(10 * n, n_vox)
            else:
                data = rng.standard_normal((n, n_vox))
            with h5py.File(deriv / "preprocessed_data" / subject / f"{story}.hf5", "w") as f:
                f.create_dataset("data", data=data)
    masks = root / "derivative" / "brainalign" / "rois"
    masks.mkdir(parents=True)
    np.savez(masks / "UTS01.npz", AC=np.arange(n_vox) < 3, Broca=np.arange(n_vox) >= 6)
    return root


NARR_ONSET, NARR_DURATION, NARR_SCAN = 14, 40, 60  # 21styear: the real onset (14 TRs = 21 s), a shortened story
N_VERT = 12  # vertices per hemisphere (fsaverage6 has 40962)
L_AREAS = ["L_A1_ROI", "L_A1_ROI", "L_STSda_ROI", "L_STSva_ROI", "L_44_ROI", "L_45_ROI",
           "L_V1_ROI", "L_V2_ROI", "L_4_ROI", "L_PGi_ROI", "???", "???"]


def _write_func_gii(path: Path, n_vols: int, sign: float) -> None:
    """A GIfTI time series with one data array per TR; value = sign * (volume + vertex / 100)."""
    img = nib.gifti.GiftiImage()
    for t in range(n_vols):
        data = (sign * (t + np.arange(N_VERT) / 100)).astype(np.float32)
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(data, intent="NIFTI_INTENT_TIME_SERIES", datatype="float32"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _write_label_gii(path: Path, names: list[str]) -> None:
    table = nib.gifti.GiftiLabelTable()
    keys = {}
    for name in dict.fromkeys(names):
        label = nib.gifti.GiftiLabel(key=len(keys), red=0.5, green=0.5, blue=0.5, alpha=1.0)
        label.label = name
        table.labels.append(label)
        keys[name] = len(keys)
    img = nib.gifti.GiftiImage(labeltable=table)
    img.add_gifti_data_array(nib.gifti.GiftiDataArray(np.array([keys[n] for n in names], dtype=np.int32),
                                                      intent="NIFTI_INTENT_LABEL", datatype="int32"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


@pytest.fixture
def narratives(tmp_path):
    """Narratives layout: 21styear (2 subjects) and slumlordreach (two stories in one task, a repeated scan,
    an excluded scan), gentle alignments with unaligned words, MMP labels on the surface."""
    root = tmp_path / "narratives"
    (root / "code").mkdir(parents=True)
    (root / "code" / "event_meta.json").write_text(json.dumps({
        "21styear": {"21styear": {"duration": NARR_DURATION, "onset": NARR_ONSET}},
        "slumlordreach": {"reach": {"duration": 16, "onset": 30}, "slumlord": {"duration": 20, "onset": 4}},
        "pieman": {"pieman": {"duration": 281, "onset": 10}},  # no alignment on disk: not a run
    }))
    (root / "code" / "scan_exclude.json").write_text(json.dumps({
        "21styear": {}, "slumlordreach": {"sub-003": ["sub-003_task-slumlordreach"]}}))
    gentle = root / "stimuli" / "gentle"
    (gentle / "21styear").mkdir(parents=True)
    (gentle / "21styear" / "align.csv").write_text(
        "So,so,21.22,21.50\nthe,the,21.60,21.80\num,,,\nstory,story,22.40,22.90\ngoes,goes,23.00,23.30\nend,,,\n")
    (gentle / "21styear" / "transcript.txt").write_text("So the, um... story goes.\n\n(end)\n")
    (gentle / "slumlordreach").mkdir()
    (gentle / "slumlordreach" / "align.csv").write_text(
        "one,one,7.0,7.4\ntwo,two,10.0,10.3\nthree,three,30.0,30.5\nfour,four,40.0,40.2\nfive,five,50.0,50.4\nsix,six,60.0,60.4\n")
    (gentle / "slumlordreach" / "transcript.txt").write_text("one, two, three. four, five, six.\n")
    func = root / "derivatives" / "afni-nosmooth"
    for sub in ("sub-001", "sub-002"):
        for hemi, sign in (("L", 1.0), ("R", -1.0)):
            _write_func_gii(func / sub / "func" / f"{sub}_task-21styear_space-fsaverage6_hemi-{hemi}_desc-clean.func.gii",
                            NARR_SCAN, sign)
    for name in ("sub-002_task-slumlordreach_run-1", "sub-002_task-slumlordreach_run-2", "sub-003_task-slumlordreach"):
        sub = name.split("_")[0]
        for hemi, sign in (("L", 1.0), ("R", -1.0)):
            _write_func_gii(func / sub / "func" / f"{name}_space-fsaverage6_hemi-{hemi}_desc-clean.func.gii", 50, sign)
    tpl = func / "tpl-fsaverage6"
    _write_label_gii(tpl / "tpl-fsaverage6_hemi-L_desc-MMP_dseg.label.gii", L_AREAS)
    _write_label_gii(tpl / "tpl-fsaverage6_hemi-R_desc-MMP_dseg.label.gii", [a.replace("L_", "R_") for a in L_AREAS])
    return root


STEM = "space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net"
N_PARCELS = 1000


def _schaefer_names() -> list[str]:
    """1000 parcel names in the Schaefer-2018 7-network order file's format (networks in blocks, per hemisphere)."""
    blocks = [("Vis", 80), ("SomMot", 90), ("DorsAttn_Post", 60), ("SalVentAttn_FrOper", 55), ("Limbic_OFC", 30),
              ("Cont_Par", 60), ("Default_Temp", 45), ("Default_Par", 30), ("Default_PFC", 40), ("Default_pCunPCC", 10)]
    assert sum(n for _, n in blocks) == 500
    names = []
    for hemi in ("LH", "RH"):
        for net, n in blocks:
            names += [f"7Networks_{hemi}_{net}_{i}" for i in range(1, n + 1)]
    return names


def _transcript(path: Path, rows: list[list[tuple[str, float, float]]]) -> None:
    out = []
    for words in rows:
        out.append({"text_per_tr": " ".join(w for w, _, _ in words),
                    "words_per_tr": str([w for w, _, _ in words]) if words else "",
                    "onsets_per_tr": str([o for _, o, _ in words]) if words else "",
                    "durations_per_tr": str([d for _, _, d in words]) if words else ""})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(out).to_csv(path, sep="\t", index=False)


@pytest.fixture
def neuromod(tmp_path):
    """The Algonauts 2025 layout: Friends and Movie10 h5 files (one dataset per run), per-TR transcripts,
    the Schaefer label file. sub-02 lacks s01e01b and has one more TR of s01e01a; Movie10's life01 is repeated."""
    root = tmp_path / "algonauts_2025.competitors"
    rng = np.random.default_rng(2)
    friends = {"sub-01": {"ses-001_task-s01e01a": 30, "ses-001_task-s01e01b": 28, "ses-014_task-s06e01a": 25},
               "sub-02": {"ses-002_task-s01e01a": 31, "ses-015_task-s06e01a": 25}}
    movie10 = {"sub-01": {"ses-030_task-bourne01": 20, "ses-031_task-life01_run-1": 22, "ses-040_task-life01_run-2": 22}}
    for task, desc, layout in (("friends", "_desc-s123456", friends), ("movie10", "", movie10)):
        for sub, keys in layout.items():
            path = root / "fmri" / sub / "func" / f"{sub}_task-{task}_{STEM}{desc}_bold.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as f:
                for key, n in keys.items():
                    f.create_dataset(key, data=rng.standard_normal((n, N_PARCELS)).astype(np.float32))
    tr = 1.49
    scripts = root / "stimuli" / "transcripts"
    _transcript(scripts / "friends" / "s1" / "friends_s01e01a.tsv",
                [[("There's", 0.5, 0.3), ("nothing", 0.9, 0.4)], [], [("to", 3.1, 0.1), ("tell!", 3.3, 0.5)]])
    _transcript(scripts / "friends" / "s1" / "friends_s01e01b.tsv", [[], [("Hi.", 1.6, 0.3)]])
    _transcript(scripts / "friends" / "s6" / "friends_s06e01a.tsv", [[("Okay", 0.2, 0.4)]])
    _transcript(scripts / "movie10" / "bourne" / "movie10_bourne01.tsv", [[("Run", 0.1, 0.3)], [("now", tr + 0.1, 0.3)]])
    _transcript(scripts / "movie10" / "life" / "movie10_life01.tsv", [[("Life", 2.0, 0.5)]])
    labels = root / "atlas" / datasets.SCHAEFER_LABELS
    labels.parent.mkdir(parents=True)
    labels.write_text("".join(f"{i}\t{n}\t120\t14\t127\t0\n" for i, n in enumerate(_schaefer_names(), 1)))
    return root


# -- the shared contract ----------------------------------------------------------------
def check_contract(ds, rois: dict) -> None:
    """What every loader promises (see brainalign.datasets)."""
    assert ds.subjects and ds.runs and isinstance(ds.tr, float) and ds.tr > 0 and ds.space
    train, test = set(ds.train_runs), set(ds.test_runs)
    assert train and train <= set(ds.runs) and test <= set(ds.runs) and not train & test
    n_vox = None
    for subject in ds.subjects[:2]:
        runs = ds.subject_runs(subject)
        assert runs and set(runs) <= set(ds.runs)
        for run in runs[:3]:
            y, t = ds.responses(subject, run), ds.tr_times(run)
            assert y.dtype == np.float32 and y.ndim == 2 and y.shape[0] == len(t) and np.isfinite(y).all()
            assert np.allclose(np.diff(t), ds.tr)
            np.testing.assert_allclose(ds.sample_times(run) - t, SAMPLE_AT[ds.sample_at] * ds.tr)
            n_vox = n_vox or y.shape[1]
            assert y.shape[1] == n_vox
            reps = ds.repeats(subject, run)
            if reps is not None:
                assert reps.ndim == 3 and reps.shape[0] >= 2 and reps.shape[1:] == y.shape
                np.testing.assert_allclose(reps.mean(0), y, rtol=1e-5, atol=1e-6)
            words = ds.words(run)
            assert list(words.columns[:3]) == ["word", "onset", "offset"] and len(words)
            assert (np.diff(words["onset"]) >= 0).all() and (words["offset"] >= words["onset"]).all()
            assert all(isinstance(w, str) and w.strip().lower() not in NONWORDS for w in words["word"])
            assert words["onset"].min() > t[0] - 60 and words["onset"].max() < t[-1] + 60
    assert rois
    for name, mask in rois.items():
        assert mask.dtype == bool and mask.shape == (n_vox,), name
    with pytest.raises(ValueError, match="unknown subject 'nobody'"):
        ds.responses("nobody", ds.runs[0])
    with pytest.raises(ValueError, match="unknown run 'norun'"):
        ds.responses(ds.subjects[0], "norun")


@pytest.mark.parametrize("which", ["simulated", "lebel2023", "narratives", "neuromod-friends", "neuromod-movie10"])
def test_every_loader_fulfils_the_contract(which, request):
    if which == "simulated":
        ds = request.getfixturevalue("cohort")
        rois = ds.rois()
    elif which == "lebel2023":
        ds = load_dataset("lebel2023", root=request.getfixturevalue("lebel_real"))
        rois = ds.rois("UTS01")
    elif which == "narratives":
        ds = load_dataset("narratives", root=request.getfixturevalue("narratives"))
        rois = ds.rois()
    else:
        ds = load_dataset("neuromod", root=request.getfixturevalue("neuromod"), task=which.split("-")[1])
        rois = ds.rois()
    check_contract(ds, rois)


def test_which_datasets_read_audio_and_video(cohort, neuromod):
    movie = load_dataset("simulated-movie", seed=0)
    friends = load_dataset("neuromod", root=neuromod)
    assert (cohort.has_audio, cohort.has_video) == (True, False)
    assert (movie.has_audio, movie.has_video) == (True, True)
    assert (friends.has_audio, friends.has_video) == (True, True)
    with pytest.raises(NotImplementedError, match="has no video"):
        cohort.frames(cohort.runs[0])
    # a real dataset's frames cannot be prepared without its movies, which are fetched only when asked for
    with pytest.raises(SystemExit, match=r"error: the movie of run 's01e01a' is not at .*--include movies"):
        cli.main(["data", "prepare", "neuromod", "--root", str(neuromod)])


# -- ds003020 -------------------------------------------------------------------------
def test_layout_and_trimming(ds003020):
    ds = DS003020(ds003020, split={"train": ["souls"], "test": ["wheretheressmoke"]})
    assert ds.subjects == ["UTS01", "UTS02"] and ds.runs == ["souls", "wheretheressmoke"]
    y = ds.responses("UTS01", "souls")
    assert y.dtype == np.float32 and y.shape == (20, 7)
    times = ds.tr_times("souls")
    assert len(times) == len(y)
    # grid of respdict - 5 TRs starting 10 s before the sound, rows [10:-5] kept
    assert times[0] == pytest.approx(10 * 2.0 - 10.0) and np.allclose(np.diff(times), 2.0)
    assert ds.repeats("UTS01", "souls") is None


def test_lebel_layout_features_at_the_reference_convention(tmp_path):
    """Words of a TextGrid, the trigger times of the respdict grid, and the feature matrix worked out by hand.

    ds003020 as the Huth lab's code reads it: 25 TRs in respdict -> a grid of 20 volumes acquired from
    -10 s, rows [10:-5] kept (onsets 10, 12, 14, 16, 18 s), features sampled at the volumes' centres
    (11, 13, ... 19 s) with the 3-lobe Lanczos filter. Silences, pauses and blank intervals are not words.
    """
    deriv = tmp_path / "derivative"
    (deriv / "TextGrids").mkdir(parents=True)
    (deriv / "respdict.json").write_text(json.dumps({"souls": 25}))
    words = pd.DataFrame([("sil", 0.0, 10.8), ("hello", 10.8, 11.2), ("sp", 11.2, 11.9), ("there", 11.9, 12.1),
                          ("world", 14.6, 15.4), ("sil", 15.4, 40.0)], columns=["word", "onset", "offset"])
    write_textgrid(deriv / "TextGrids" / "souls.TextGrid", words, duration=40.0)  # 12.1-14.6 s left blank
    (deriv / "preprocessed_data" / "UTS01").mkdir(parents=True)
    with h5py.File(deriv / "preprocessed_data" / "UTS01" / "souls.hf5", "w") as f:
        f.create_dataset("data", data=np.zeros((5, 3)))

    ds = load_dataset("lebel2023", root=tmp_path)
    assert ds.sample_at == "centre"
    np.testing.assert_array_equal(ds.tr_times("souls"), [10.0, 12.0, 14.0, 16.0, 18.0])
    kept = ds.words("souls")
    assert list(kept["word"]) == ["hello", "there", "world"]
    one_hot = np.eye(3)[None]  # (1 layer, 3 words, 3 features): one column per word
    X = features.tr_features(one_hot, word_times(kept), ds.sample_times("souls"))[0]

    def lanczos(d):  # the kernel at a distance of d seconds, TR = 2 s, 3 lobes
        return np.where(np.abs(d) <= 6.0, np.sinc(d / 2.0) * np.sinc(d / 6.0), 0.0)

    rows = np.array([11.0, 13.0, 15.0, 17.0, 19.0])
    expected = np.column_stack([lanczos(rows - 11.0), lanczos(rows - 12.0), lanczos(rows - 15.0)])
    # a word at a sampling time lands on its row alone: the kernel is 0 at every other multiple of the TR
    np.testing.assert_allclose(expected[:, 0], [1, 0, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(X, expected, atol=1e-6)
    # sampled at the trigger times instead (Study 1's convention), the same words spread over two rows
    onset = load_dataset("lebel2023", root=tmp_path, sample_at="onset")
    X_onset = features.tr_features(one_hot, word_times(kept), onset.sample_times("souls"))[0]
    np.testing.assert_allclose(X_onset[:, 0], lanczos(rows - 1.0 - 11.0), atol=1e-6)
    assert X_onset[0, 0] < 0.7 and X_onset[1, 0] < 0.7
    with pytest.raises(ValueError, match=r"unknown sample_at 'end'; valid: \['centre', 'onset'\]"):
        load_dataset("lebel2023", root=tmp_path, sample_at="end")


def test_repeats_stacked_and_averaged(ds003020):
    ds = DS003020(ds003020)
    reps = ds.repeats("UTS02", "wheretheressmoke")
    assert reps.shape == (3, 16, 7)
    np.testing.assert_allclose(ds.responses("UTS02", "wheretheressmoke"), reps.mean(0), rtol=1e-6)


def test_words_drop_nonwords(ds003020):
    words = DS003020(ds003020).words("souls")
    assert list(words["word"]) == ["so", "it", "began"]


def test_bad_input_is_named(ds003020, tmp_path):
    ds = DS003020(ds003020)
    with pytest.raises(ValueError, match="unknown subject 'UTS09'.*UTS01"):
        ds.responses("UTS09", "souls")
    with pytest.raises(ValueError, match="unknown run 'avatar'"):
        ds.responses("UTS01", "avatar")
    (ds003020 / "derivative" / "preprocessed_data" / "UTS01" / "souls.hf5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        ds.responses("UTS01", "souls")
    with pytest.raises(FileNotFoundError, match="respdict.json"):
        DS003020(tmp_path / "empty")
    ds = DS003020(ds003020)
    folder = ds003020 / "derivative" / "preprocessed_data" / "UTS02"
    first, other = sorted(folder.glob("*.hf5"))[:2]
    n = ds.responses("UTS02", first.stem).shape[1]
    with h5py.File(other, "r+") as f:
        key = "data" if "data" in f else "resp"
        data = f[key][...]
        del f[key]
        f.create_dataset(key, data=data[..., : n - 1])  # one voxel fewer than the subject's other runs
    with pytest.raises(ValueError, match=rf"{other.name} has {n - 1} voxels, but .*{first.name} of the same subject has {n}"):
        ds.responses("UTS02", other.stem)


def test_real_respdict_entries_set_the_trimming(lebel_real):
    """Rows = respdict - 20 for the real story lengths; the test story's 10 repeats in 3-D or 2-D."""
    ds = load_dataset("lebel2023", root=lebel_real)
    assert ds.subjects == ["UTS01", "UTS02", "UTS09"]  # UTS09 found on disk
    assert ds.runs == ["life", "souls", "wheretheressmoke"]
    assert ds.train_runs == ["life", "souls"] and ds.test_runs == ["wheretheressmoke"]  # the manifest, on disk
    for story in ds.runs:
        t = ds.tr_times(story)
        assert len(t) == REAL_RESPDICT[story] - 20 and t[0] == pytest.approx(10.0)
        assert t[-1] == pytest.approx((REAL_RESPDICT[story] - 5 - 5 - 1) * 2.0 - 10.0)
    assert ds.responses("UTS01", "souls").shape == (REAL_RESPDICT["souls"] - 20, 9)
    for subject in ("UTS01", "UTS02"):
        assert ds.repeats(subject, "wheretheressmoke").shape == (10, 291, 9)
    assert ds.subject_runs("UTS02") == ["souls", "wheretheressmoke"] and ds.subject_runs("UTS09") == ["souls"]
    with pytest.raises(FileNotFoundError, match="fetch lebel2023 --subjects UTS02 --runs life"):
        ds.responses("UTS02", "life")
    words = ds.words("life")
    assert set(words["word"]) == {"so", "it", "began", "again"}  # sp, br, ns, lg, sentence_start dropped
    assert ds.tr == 2.0 and load_dataset("lebel2023", root=lebel_real, tr=2.0045).tr == 2.0045


def test_lebel2023_rois_per_subject_or_a_clear_error(lebel_real):
    ds = load_dataset("lebel2023", root=lebel_real)
    rois = ds.rois("UTS01")
    assert sorted(rois) == ["AC", "Broca"] and rois["AC"].sum() == 3
    with pytest.raises(FileNotFoundError, match="UTS02.*pycortex.*numpy.savez"):
        ds.rois("UTS02")
    with pytest.raises(ValueError, match="subject-specific.*rois\\(subject\\)"):
        ds.rois()


def test_real_respdict_matches_the_manifest():
    """ds003020's real respdict.json (the committed fixture): 84 stories, the split manifest covers exactly them."""
    manifest = read_manifest("lebel2023")
    assert len(REAL_RESPDICT) == 84 and REAL_RESPDICT["wheretheressmoke"] == 311
    assert sorted(manifest["train"] + manifest["test"]) == sorted(REAL_RESPDICT)
    assert min(REAL_RESPDICT.values()) > 20  # every story keeps rows after trimming


def test_unknown_dataset_and_offline_real_data(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*simulated"):
        load_dataset("nope")
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ds003020.*download.*brainalign data fetch lebel2023"):
        load_dataset("lebel2023")
    with pytest.raises(FileNotFoundError, match="narratives.*brainalign data fetch narratives"):
        load_dataset("narratives")
    with pytest.raises(FileNotFoundError, match="sign-up.*forms.gle.*brainalign data fetch neuromod"):
        load_dataset("neuromod")


def test_manifests_are_versioned_and_consistent():
    real = read_manifest("lebel2023")
    assert real["version"] >= 1 and real["test"] == ["wheretheressmoke"]
    assert sorted(real["train"] + real["test"]) == sorted(REAL_RESPDICT)
    sim = read_manifest("simulated")
    assert not set(sim["train"]) & set(sim["test"])
    assert set(sim["held_out_subjects"]) <= set(sim["subjects"]) and len(sim["subjects"]) >= 4
    narr = read_manifest("narratives")
    assert narr["test"] == [] and "cross-validate" in narr["note"] and "21styear" in narr["train"]
    assert len(narr["subjects"]) == 18 and narr["tr"] == 1.5
    nm = read_manifest("neuromod")
    assert nm["tr"] == 1.49 and not set(nm["train"]) & set(nm["test"])
    assert all(r.startswith("s06") for r in nm["test"]) and len(nm["train"]) == 48 + 48 + 50 + 48 + 48
    assert not set(nm["splits"]["movie10"]["train"]) & set(nm["splits"]["movie10"]["test"])
    with pytest.raises(ValueError, match="manifests exist for"):
        read_manifest("nope")


# -- Narratives -----------------------------------------------------------------------
def test_narratives_trims_to_the_story_and_concatenates_hemispheres(narratives):
    ds = Narratives(narratives)
    assert ds.runs == ["21styear", "reach", "slumlord"]  # pieman has no alignment on disk
    assert ds.subjects == ["sub-001", "sub-002"]  # sub-003's only scan is excluded by scan_exclude.json
    y = ds.responses("sub-001", "21styear")
    assert y.shape == (NARR_DURATION, 2 * N_VERT) and y.dtype == np.float32
    # left: volume + vertex/100, right: its negative; rows are volumes onset .. onset + duration - 1
    np.testing.assert_allclose(y[:, 0], np.arange(NARR_ONSET, NARR_ONSET + NARR_DURATION))
    np.testing.assert_allclose(y[0, :N_VERT], NARR_ONSET + np.arange(N_VERT) / 100, rtol=1e-6)
    np.testing.assert_allclose(y[:, N_VERT:], -y[:, :N_VERT])
    np.testing.assert_allclose(ds.tr_times("21styear"), np.arange(NARR_DURATION) * 1.5)
    np.testing.assert_allclose(ds.sample_times("21styear"), ds.tr_times("21styear"))  # Study 1: at the triggers
    assert ds.repeats("sub-001", "21styear") is None


def test_narratives_words_relative_to_story_onset_with_unaligned_words_interpolated(narratives):
    ds = Narratives(narratives)
    words = ds.words("21styear")
    assert list(words["word"]) == ["So", "the", "um", "story", "goes", "end"]  # no word dropped
    assert list(words["written"]) == ["So", "the,", "um...", "story", "goes.", "(end)"]  # the transcript's punctuation
    start = NARR_ONSET * 1.5  # 21 s: the story onset in the scan
    assert words["onset"].iloc[0] == pytest.approx(21.22 - start)
    # "um" lies between "the" (21.60) and "story" (22.40): linear interpolation over the word index
    assert words["onset"].iloc[2] == pytest.approx((21.60 + 22.40) / 2 - start)
    assert words["offset"].iloc[2] == pytest.approx((21.80 + 22.90) / 2 - start)
    # a trailing unaligned word takes the last aligned word's times
    assert words["onset"].iloc[5] == pytest.approx(23.00 - start)


def test_narratives_words_keep_the_texts_order_where_gentles_onsets_go_backwards(narratives):
    # as in 21styear's alignment, where sorting by onset turned "the last twenty five" into "the twenty last five"
    story = narratives / "stimuli" / "gentle" / "21styear"
    (story / "align.csv").write_text("the,the,21.0,21.2\nlast,last,21.3,21.5\ntwenty,twenty,20.4,20.7\nfive,five,21.9,22.2\n")
    (story / "transcript.txt").write_text("The last twenty-five.")
    with pytest.raises(ValueError, match=r"transcript.txt does not match .*align.csv: word 1 is 'The' in the transcript "
                                         r"and 'the' in row 1"):
        Narratives(narratives).words("21styear")
    (story / "transcript.txt").write_text("the last twenty-five.")
    words = Narratives(narratives).words("21styear")
    assert list(words["word"]) == ["the", "last", "twenty", "five"]
    assert list(words["written"]) == ["the", "last", "twenty-", "five."]
    assert (np.diff(words["onset"]) > 0).all()
    assert words["onset"].iloc[2] == pytest.approx((21.3 + 21.9) / 2 - NARR_ONSET * 1.5)
    (story / "transcript.txt").unlink()
    with pytest.raises(FileNotFoundError, match="transcript.txt is missing.*brainalign data fetch narratives --runs 21styear"):
        Narratives(narratives).words("21styear")


def test_study_one_labels_a_narratives_story_by_the_transcripts_sentences_and_the_studys_classes(narratives):
    from brainalign import probing
    from brainalign.stimuli import GENTLE_WORD

    story = narratives / "stimuli" / "gentle" / "21styear"
    text = ("Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
            "I thought I would sail about a little. The old man saw the whale.")
    (story / "transcript.txt").write_text(text + "\n")
    tokens = [m.group() for m in GENTLE_WORD.finditer(text)]  # gentle's rows: no punctuation, so no sentence ends
    (story / "align.csv").write_text("".join(f"{w},{w.lower()},{22 + 0.3 * i:.2f},{22.2 + 0.3 * i:.2f}\n"
                                             for i, w in enumerate(tokens)))
    words = Narratives(narratives).words("21styear")
    assert list(words["word"]) == tokens
    annotations = probing.annotate_runs({"21styear": list(words["written"])})
    labels = probing.property_labels(annotations, ["sentence_length", "top_constituents", "tense"], classes="study")
    first = annotations.groupby("sentence").head(1).index
    # by hand: 3 words, present, a bare VP (an imperative); 24 words, past, opened by an adverbial phrase; 6 words, past, NP VP
    assert annotations["sentence"].nunique() == 3
    assert list(annotations.loc[first, "sentence_length"]) == [3, 24, 6]
    assert list(labels.loc[first, "sentence_length"]) == ["1-4", "9+", "5-8"]
    assert list(labels.loc[first, "tense"]) == ["PRES", "PAST", "PAST"]
    assert list(labels.loc[first, "top_constituents"]) == ["OTHER", "OTHER", "NP_VP"]


def test_the_studys_released_labels_are_read_in_its_classes_and_compared_with_ours(narratives):
    """The label file in its released format (written words, CSV-quoted where they hold a comma, the study's codes,
    its mis-encoded ellipses), read against the story's words, and the agreement of our labeller with it."""
    import csv

    from brainalign import probing
    from brainalign.stimuli import GENTLE_WORD

    story = narratives / "stimuli" / "gentle" / "21styear"
    sentences = ["Call me Ishmael.",
                 "Some years ago, never mind how long precisely, having little or no money in my purse, "
                 "I thought I would sail about a little.",
                 "The old man saw the whale."]
    text = " ".join(sentences)
    (story / "transcript.txt").write_text(text + "\n")
    tokens = [m.group() for m in GENTLE_WORD.finditer(text)]
    (story / "align.csv").write_text("".join(f"{w},{w.lower()},{22 + 0.3 * i:.2f},{22.2 + 0.3 * i:.2f}\n"
                                             for i, w in enumerate(tokens)))
    ds = Narratives(narratives)
    assert ds.study_labels("21styear") is None  # not fetched
    # by hand, in the study's codes: sen_len (3: 1-4, 1: 5-8, 2: 9+ words), tree_depth, top_const (1: NP VP),
    # tense (1: past, 2: present), subjnum and objnum (1: singular, 2: plural)
    codes = [(3, 5, 2, 2, 1, 1), (2, 7, 2, 1, 1, 1), (1, 6, 1, 1, 1, 1)]
    rows = []
    for sentence, code in zip(sentences, codes):
        written = sentence.split()
        written[-1] = written[-1].replace(".", "\u00e2\u20ac\u00a6") if code[0] == 2 else written[-1]  # as the file has it
        rows += [(w, *code) for w in written]
    labels_dir = narratives / "stimuli" / "oota2023"
    labels_dir.mkdir(parents=True)
    path = labels_dir / "21styear_probing_labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["words", "sen_len", "tree_depth", "top_const", "tense", "subjnum", "objnum"])
        writer.writerows(rows)
    assert '"ago,"' in path.read_text()
    study = ds.study_labels("21styear")
    first = [0, 3, 3 + 24]
    assert len(study) == len(tokens) == 33
    assert list(study.loc[first, "sentence_length"]) == ["1-4", "9+", "5-8"]
    assert list(study.loc[first, "tree_depth"]) == ["1-5", "7+", "6"]
    assert list(study.loc[first, "top_constituents"]) == ["OTHER", "OTHER", "NP_VP"]
    assert list(study.loc[first, "tense"]) == ["PRES", "PAST", "PAST"]
    ours = probing.property_labels(probing.annotate_runs({"21styear": list(ds.words("21styear")["written"])}), classes="study")
    agree = probing.label_agreement(ours.reset_index(drop=True), study)
    for prop in ("sentence_length", "top_constituents", "tense"):  # what the test above checks our labeller gives
        assert agree.loc[prop, "agreement"] == 1.0 and agree.loc[prop, "kappa"] == pytest.approx(1.0)
    assert agree.loc["sentence_length", "chance_agreement"] == pytest.approx((3**2 + 24**2 + 6**2) / 33**2)
    # a file of another story, rows out of order, or a code the study does not use: stopped, naming the row
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["words", "sen_len", "tree_depth", "top_const", "tense", "subjnum", "objnum"],
                                 rows[1], rows[0], *rows[2:]])
    with pytest.raises(ValueError, match=r"row 2 labels 'me' where the story has 'Call' \(2 rows differ\)"):
        ds.study_labels("21styear")
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["words", "sen_len", "tree_depth", "top_const", "tense", "subjnum", "objnum"],
                                 rows[0][:1] + (4,) + rows[0][2:], *rows[1:]])
    with pytest.raises(ValueError, match=r"row 2 has sen_len='4'; the study's codes are \[1, 2, 3\]"):
        ds.study_labels("21styear")
    path.write_text("words,sen_len\nCall,3\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['tree_depth'"):
        ds.study_labels("21styear")


def test_narratives_task_with_two_stories_and_repeated_scans(narratives):
    ds = Narratives(narratives)
    slum, reach = ds.words("slumlord"), ds.words("reach")
    assert list(slum["word"]) == ["one", "two", "three"]  # onsets before slumlord's end (36 s)
    assert list(reach["word"]) == ["four", "five", "six"]
    assert slum["onset"].iloc[0] == pytest.approx(7.0 - 4 * 1.5) and reach["onset"].iloc[1] == pytest.approx(50.0 - 45.0)
    reps = ds.repeats("sub-002", "reach")
    assert reps.shape == (2, 16, 2 * N_VERT)
    np.testing.assert_allclose(ds.responses("sub-002", "reach")[:, 0], np.arange(30, 46))
    assert ds.subject_runs("sub-001") == ["21styear"] and ds.subject_runs("sub-002") == ["21styear", "reach", "slumlord"]
    with pytest.raises(FileNotFoundError, match="fetch narratives --subjects sub-001 --runs reach"):
        ds.responses("sub-001", "reach")
    assert "sub-003" in Narratives(narratives, exclude=False).subjects


def test_narratives_selection_and_split(narratives):
    ds = load_dataset("narratives", root=narratives, runs=["21styear"], subjects=["sub-002"])
    assert ds.runs == ["21styear"] and ds.subjects == ["sub-002"]
    assert ds.train_runs == ["21styear"] and ds.test_runs == []
    with pytest.raises(ValueError, match="run\\(s\\) \\['pieman'\\].*runs on disk"):
        Narratives(narratives, runs=["pieman"])
    with pytest.raises(ValueError, match="sub-244.*on disk: \\['sub-001', 'sub-002'\\]"):
        Narratives(narratives, subjects=["sub-244"])


def test_narratives_rois_from_mmp_labels(narratives):
    ds = Narratives(narratives)
    rois = ds.rois()
    expect = np.zeros(N_VERT, bool)
    expect[:2] = True  # L_A1_ROI
    np.testing.assert_array_equal(rois["auditory"], np.concatenate([expect, expect]))
    assert rois["LTC"].sum() == 4 and rois["IFG"].sum() == 4 and rois["motor"].sum() == 2
    np.testing.assert_array_equal(rois["language"], rois["LTC"] | rois["AG"] | rois["IFG"] | rois["MFG"] | rois["PCC"])
    sub = ds.subregions()
    assert sorted(sub["IFG"]) == ["44", "45"] and sub["IFG"]["44"].sum() == 2
    for path in (narratives / "derivatives" / "afni-nosmooth" / "tpl-fsaverage6").glob("*.label.gii"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="HCP-MMP1.annot"):
        Narratives(narratives).rois()


def test_fsaverage_annot_is_cut_to_fsaverage6(tmp_path):
    """An HCP-MMP1 annotation on fsaverage (163842 vertices) is read with nibabel and cut to its first 40962."""
    labels = np.zeros(163842, dtype=np.int32)
    labels[5] = 1
    labels[40962 + 7] = 1  # beyond fsaverage6: dropped
    ctab = np.array([[0, 0, 0, 0, 0], [255, 0, 0, 0, 255]], dtype=np.int32)
    path = tmp_path / "lh.HCP-MMP1.annot"
    nib.freesurfer.write_annot(str(path), labels, ctab, [b"???", b"L_A1_ROI"], fill_ctab=True)
    areas = datasets.narratives._read_surface_labels(path)
    assert len(areas) == 40962 and list(np.flatnonzero(areas == "L_A1_ROI")) == [5]


# -- NeuroMod (Algonauts 2025) ------------------------------------------------------------
def test_neuromod_friends_runs_keys_and_lengths(neuromod):
    ds = load_dataset("neuromod", root=neuromod)
    assert ds.runs == ["s01e01a", "s01e01b", "s06e01a"] and ds.subjects == ["sub-01", "sub-02"]
    assert ds.train_runs == ["s01e01a", "s01e01b"] and ds.test_runs == ["s06e01a"]
    assert ds.subject_runs("sub-02") == ["s01e01a", "s06e01a"]
    # sub-02 has one TR more of s01e01a: both are cut to the shortest
    assert len(ds.tr_times("s01e01a")) == 30 and ds.responses("sub-02", "s01e01a").shape == (30, N_PARCELS)
    np.testing.assert_allclose(ds.sample_times("s01e01a"), np.arange(30) * 1.49 + 0.745)  # the middle of each volume
    with h5py.File(neuromod / "fmri" / "sub-02" / "func" / f"sub-02_task-friends_{STEM}_desc-s123456_bold.h5") as f:
        np.testing.assert_array_equal(ds.responses("sub-02", "s01e01a"), f["ses-002_task-s01e01a"][:30])
    with pytest.raises(FileNotFoundError, match="sub-02.*s01e01b"):
        ds.responses("sub-02", "s01e01b")
    words = ds.words("s01e01a")
    assert list(words["word"]) == ["There's", "nothing", "to", "tell!"]
    np.testing.assert_allclose(words["offset"], [0.8, 1.3, 3.2, 3.8])


def test_neuromod_movie10_repeats(neuromod):
    ds = NeuroMod(neuromod, task="movie10")
    assert ds.runs == ["bourne01", "life01"] and ds.subjects == ["sub-01"]
    assert ds.repeats("sub-01", "life01").shape == (2, 22, N_PARCELS) and ds.repeats("sub-01", "bourne01") is None
    split = load_dataset("neuromod", root=neuromod, task="movie10").split
    assert split == {"train": ["bourne01"], "test": ["life01"]}
    with pytest.raises(ValueError, match="unknown task 'movies'.*friends"):
        NeuroMod(neuromod, task="movies")


def test_neuromod_rois_from_schaefer_names(neuromod, tmp_path):
    ds = NeuroMod(neuromod)
    rois = ds.rois()
    assert rois["Vis"].sum() == 160 and rois["Default"].sum() == 250 and rois["LTC"].sum() == 90
    np.testing.assert_array_equal(rois["visual"], rois["Vis"])
    np.testing.assert_array_equal(rois["language"], rois["LTC"] | rois["AG"] | rois["PFC"])
    assert not (rois["LTC"] & rois["AG"]).any() and rois["somatomotor"].sum() == 180
    assert len(ds.subregions()["PCC"]) == 20
    (neuromod / "atlas" / datasets.SCHAEFER_LABELS).unlink()
    with pytest.raises(FileNotFoundError, match="Schaefer.*brainalign data fetch neuromod"):
        NeuroMod(neuromod, labels=tmp_path / "none.txt").rois()


def test_transcript_parsing_and_errors(tmp_path):
    path = tmp_path / "t.tsv"
    _transcript(path, [[("b", 2.0, 0.5)], [], [("a", 1.0, 0.2)]])
    words = read_transcript_tsv(path)
    assert list(words["word"]) == ["a", "b"] and words["offset"].tolist() == [1.2, 2.5]
    path.write_text("text_per_tr\twords_per_tr\tonsets_per_tr\tdurations_per_tr\nx\t['x', 'y']\t[1.0]\t[0.1]\n")
    with pytest.raises(ValueError, match="row 1: 2 words, 1 onsets"):
        read_transcript_tsv(path)
    path.write_text("text\nx\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_transcript_tsv(path)


# -- ROI groups ----------------------------------------------------------------------
def test_roi_groups_are_defined_once():
    from brainalign import simulate, spaces

    assert simulate.ROI_GROUPS is ROI_GROUPS is spaces.ROI_GROUPS
    assert datasets.MOVIE_ROI_GROUPS is spaces.MOVIE_ROI_GROUPS and datasets.SCHAEFER_ROI_GROUPS is spaces.SCHAEFER_ROI_GROUPS
    assert glasser_area("L_STSda_ROI") == "STSda" and glasser_area("R_4") == "4" and glasser_area("55b") == "55b"
    rois = glasser_rois(["L_A1", "R_A1_ROI", "L_55b", "???"])
    assert rois["auditory"].tolist() == [True, True, False, False] and rois["language"].tolist() == [False, False, True, False]


def test_simulated_rois_are_the_glasser_groups(cohort):
    """The cohort's ROIs equal the groups applied to the HCP-MMP1 labels of its vertices; sub-regions are areas."""
    areas = datasets.fslr_areas(cohort.vertices)
    expected = glasser_rois(areas)
    got = cohort.rois()
    assert sorted(got) == sorted(expected)
    for name in got:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    sub = cohort.subregions()
    assert set(sub) == set(ROI_GROUPS) and set(sub["auditory"]) <= set(ROI_GROUPS["auditory"])
    for roi, areas_of in sub.items():
        np.testing.assert_array_equal(np.any(list(areas_of.values()), axis=0), got[roi], err_msg=roi)


def test_schaefer_label_file_format(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("1\t7Networks_LH_Vis_1\t120\t14\t127\t0\n2\t7Networks_RH_Default_Temp_1\t1\t2\t3\t0\n")
    names = read_schaefer_labels(path)
    assert names == ["LH_Vis_1", "RH_Default_Temp_1"]
    rois = schaefer_rois(names)
    assert rois["Vis"].tolist() == [True, False] and rois["LTC"].tolist() == [False, True]
    path.write_text("1\t7Networks_LH_Vis_1\t1\t2\t3\t0\n3\t7Networks_LH_Vis_2\t1\t2\t3\t0\n")
    with pytest.raises(ValueError, match="not 1..2"):
        read_schaefer_labels(path)


# -- NeuroMod movies (audio and frames) ---------------------------------------------------
MOVIE_FPS = __import__("fractions").Fraction(30000, 1001)  # NTSC, as the episodes


def _write_mkv(path: Path, n_frames: int = 0, audio: np.ndarray | None = None, sr: int = 22050,
               size: tuple[int, int] = (64, 96)) -> None:
    """A Matroska file written with PyAV: ``n_frames`` grey frames at ``MOVIE_FPS`` whose brightness tells
    which frame is shown (``_brightness``; libx264), and ``audio`` (channels, samples) in AAC."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=MOVIE_FPS, options={"crf": "0"}) if n_frames else None
        sound = out.add_stream("aac", rate=sr, layout="stereo" if audio.shape[0] == 2 else "mono") if audio is not None else None
        if video is not None:
            video.height, video.width, video.pix_fmt = *size, "yuv420p"
            for i in range(n_frames):
                frame = av.VideoFrame.from_ndarray(np.full((*size, 3), _brightness(i), np.uint8), format="rgb24")
                frame.pts = i
                out.mux(video.encode(frame))
            out.mux(video.encode())
        if sound is not None:
            for at in range(0, audio.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, at : at + 1024], np.float32), format="fltp",
                                                   layout=sound.layout.name)
                frame.sample_rate, frame.pts = sr, at
                out.mux(sound.encode(frame))
            out.mux(sound.encode())


def _brightness(index):
    """The grey level of frame ``index``: steps of 7 (the colour conversions are off by 2 at most), every 32 frames."""
    return 10 + 7 * (np.asarray(index) % 32)


def _shown(times: np.ndarray, n_frames: int) -> np.ndarray:
    """The frame on screen at each time: the last to start at or before it (Matroska stores times in ms)."""
    starts = np.round(np.arange(n_frames) / float(MOVIE_FPS), 3)
    return np.searchsorted(starts, times + 1e-6, side="right") - 1


def _tone(sr: int, duration: float, start: float, hz: float) -> np.ndarray:
    """Stereo: silence, then from ``start`` a tone, louder on the left (0.4) than on the right (0.2)."""
    t = np.arange(int(duration * sr)) / sr
    wave = np.where(t >= start, np.sin(2 * np.pi * hz * t), 0.0)
    return np.stack([0.4 * wave, 0.2 * wave])


def test_neuromod_frames_are_those_shown_at_the_grid_times_resized(neuromod):
    n = 70  # 2.34 s at 29.97 frames/s
    _write_mkv(neuromod / "stimuli" / "movies" / "friends" / "s1" / "friends_s01e01a.mkv", n, _tone(22050, 2.34, 0.5, 440))
    ds = load_dataset("neuromod", root=neuromod, frame_rate=4.0, frame_size=32)
    frames, times = ds.frames("s01e01a")
    assert frames.dtype == np.uint8 and frames.shape == (len(times), 32, 48, 3)  # the short side 32 pixels, 2:3 kept
    np.testing.assert_allclose(times, np.arange(len(times)) / 4.0)
    assert times[-1] < n / MOVIE_FPS <= times[-1] + 0.25  # until the last frame ends
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), _brightness(_shown(times, n)), atol=2.5)
    fine, fine_times = NeuroMod(neuromod, frame_rate=60.0, frame_size=16).frames("s01e01a")  # faster than the movie
    assert fine.shape[1:] == (16, 24, 3) and len(fine_times) == int(np.ceil(n / MOVIE_FPS * 60))
    assert (np.diff(_shown(fine_times, n)) == 0).any()  # a frame kept at two grid times
    np.testing.assert_allclose(fine.mean(axis=(1, 2, 3)), _brightness(_shown(fine_times, n)), atol=2.5)


def test_neuromod_audio_is_the_sound_track_in_mono(neuromod):
    sr = 22050
    _write_mkv(neuromod / "stimuli" / "movies" / "movie10" / "life" / "life01.mkv", 20, _tone(sr, 2.0, 0.5, 440), sr)
    audio, rate = NeuroMod(neuromod, task="movie10").audio("life01")
    assert rate == sr and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / sr - 2.0) < 1024 / sr  # an AAC encoder pads its last frame
    loud = np.flatnonzero(np.abs(audio) > 0.1)
    assert abs(loud[0] / sr - 0.5) < 0.01  # the tone starts when it was written to
    tone = audio[int(0.6 * sr) : int(1.9 * sr)]
    assert abs(np.abs(tone).max() - 0.3) < 0.03  # the channels averaged
    spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    assert abs(np.fft.rfftfreq(len(tone), 1 / sr)[spectrum.argmax()] - 440) < 2


def test_neuromod_movie_errors_are_named(neuromod):
    ds = NeuroMod(neuromod)
    with pytest.raises(FileNotFoundError, match=r"movie of run 's01e01b' is not at .*friends_s01e01b\.mkv.*stimuli/movies/.*"
                                                r"brainalign data fetch neuromod --include movies --runs s01e01b.*"
                                                r"datalad get stimuli/movies/friends/s1/"):
        ds.audio("s01e01b")
    assert NeuroMod(neuromod, task="movie10").movie("bourne01") == neuromod / "stimuli" / "movies" / "movie10" / "bourne" / "bourne01.mkv"
    movies = neuromod / "stimuli" / "movies" / "friends"
    _write_mkv(movies / "s1" / "friends_s01e01a.mkv", n_frames=5)
    with pytest.raises(ValueError, match="friends_s01e01a.mkv has no audio stream"):
        ds.audio("s01e01a")
    _write_mkv(movies / "s1" / "friends_s01e01b.mkv", audio=_tone(16000, 0.5, 0.0, 300), sr=16000)
    with pytest.raises(ValueError, match="friends_s01e01b.mkv has no video stream"):
        ds.frames("s01e01b")
    (movies / "s6").mkdir()
    (movies / "s6" / "friends_s06e01a.mkv").write_bytes(b"\x1aE\xdf\xa3 not a movie")
    for read in (ds.audio, ds.frames):
        with pytest.raises(ValueError, match="friends_s06e01a.mkv is not a readable movie file"):
            read("s06e01a")
    with pytest.raises(ValueError, match=r"frame_rate=0: .* > 0"):
        NeuroMod(neuromod, frame_rate=0)
    with pytest.raises(ValueError, match=r"frame_size=8: .* >= 16"):
        load_dataset("neuromod", root=neuromod, frame_size=8)
    with pytest.raises(ValueError, match="unknown run 'nope'"):
        ds.frames("nope")
