"""Fetching real datasets, with the network replaced by fake transports (no test touches the network)."""

import hashlib
import io
import json
import re
import urllib.error
from pathlib import Path

import h5py
import numpy as np
import pytest

from brainalign import cli, fetch
from brainalign.datasets import load_dataset
from brainalign.fetch import DataLadTransport, FetchError, FileSpec, HTTPTransport, OpenNeuroTransport

FIXTURES = Path(__file__).parent / "fixtures"
REAL_RESPDICT = json.loads((FIXTURES / "ds003020_respdict.json").read_text())


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private data home, online unless a test says otherwise."""
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "0")
    return tmp_path / "home"


def _hdf5_bytes(n_rows: int, n_vox: int = 4, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("data", data=np.random.default_rng(seed).standard_normal((n_rows, n_vox)))
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- a toy dataset served by a fake web server ----------------------------------------------
SERVER = {
    "derivative/respdict.json": json.dumps({"a": 30, "b": 25}).encode(),
    "data/S1/a.hf5": _hdf5_bytes(10, seed=1),
    "data/S1/b.hf5": _hdf5_bytes(5, seed=2),
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A file manifest 'toy' (monkeypatched into the manifests folder) whose files come over HTTP."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    manifest = {
        "dataset": "toy", "version": 1, "folder": "toy",
        "sources": {"http": {"url": "https://example.org/toy/"}},
        "files": [{"path": "derivative/respdict.json"},
                  {"path": "data/{subject}/{run}.hf5", "per": ["subject", "run"]}],
        "runs": ["a", "b"],
        "subjects": {"S1": "*"},
        "checksums": {p: {"size": len(v), "md5": _md5(v)} for p, v in SERVER.items() if p.endswith(".hf5")},
    }
    (folder / "toy.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(fetch.manifest, "FILE_MANIFESTS", folder)
    return manifest


class FakeResponse:
    def __init__(self, data: bytes, status: int = 200, fail_after: int | None = None):
        self.data, self.status, self.fail_after, self.pos = data, status, fail_after, 0
        self.headers = {"Content-Length": str(len(data))}

    def read(self, n: int) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        stop = len(self.data) if self.fail_after is None else min(len(self.data), self.fail_after)
        block = self.data[self.pos : min(self.pos + n, stop)]
        self.pos += len(block)
        return block

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeServer:
    """An ``opener`` for HTTPTransport: serves SERVER, honours Range, records requests, can misbehave."""

    def __init__(self, files=None, fail_after=None, ignore_range=False):
        self.files = dict(SERVER if files is None else files)
        self.fail_after = dict(fail_after or {})
        self.ignore_range = ignore_range
        self.requests = []

    def __call__(self, request):
        path = request.full_url.split("/toy/", 1)[1]
        rng = request.get_header("Range")
        self.requests.append((path, rng))
        if path not in self.files:
            raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)
        data = self.files[path]
        if rng and not self.ignore_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            return FakeResponse(data[start:], status=206)
        return FakeResponse(data, fail_after=self.fail_after.pop(path, None))


def _fetch_toy(server, **kw):
    return fetch.fetch("toy", transport=HTTPTransport("https://example.org/toy/", opener=server, progress=False),
                       progress=False, **kw)


# -- the downloader -----------------------------------------------------------------
def test_fetch_puts_valid_files_in_place_and_a_second_fetch_downloads_nothing(toy, home):
    server = FakeServer()
    report = _fetch_toy(server)
    root = home / "toy"
    assert sorted(report.fetched) == sorted(SERVER) and not report.failed
    for path, data in SERVER.items():
        assert (root / path).read_bytes() == data
    assert not list((root / fetch.STAGING).rglob("*.*"))  # nothing left in staging
    n = len(server.requests)
    again = _fetch_toy(server)
    assert len(server.requests) == n and again.fetched == [] and sorted(again.skipped) == sorted(SERVER)


def test_checksum_mismatch_is_rejected(toy, home):
    bad = dict(SERVER)
    bad["data/S1/b.hf5"] = _hdf5_bytes(5, seed=99)  # same size, other bytes
    with pytest.raises(FetchError, match="data/S1/b.hf5: rejected: md5"):
        _fetch_toy(FakeServer(bad))
    root = home / "toy"
    assert not (root / "data/S1/b.hf5").exists() and not (root / fetch.STAGING / "data/S1/b.hf5").exists()
    assert (root / "data/S1/a.hf5").read_bytes() == SERVER["data/S1/a.hf5"]  # the good file is in place


def test_an_html_error_page_is_rejected(toy, home):
    bad = dict(SERVER)
    bad["derivative/respdict.json"] = b"<!DOCTYPE html><html><body>Service Unavailable</body></html>"
    with pytest.raises(FetchError, match="respdict.json: rejected: an HTML page"):
        _fetch_toy(FakeServer(bad))
    assert not (home / "toy" / "derivative/respdict.json").exists()


def test_interrupted_download_leaves_no_file_in_place_and_resumes(toy, home):
    cut = 700
    server = FakeServer(fail_after={"data/S1/a.hf5": cut})
    with pytest.raises(FetchError, match="(?s)data/S1/a.hf5: ConnectionResetError.*rerun"):
        _fetch_toy(server)
    root = home / "toy"
    assert not (root / "data/S1/a.hf5").exists()
    assert (root / fetch.STAGING / "data/S1/a.hf5").stat().st_size == cut  # the partial waits in staging
    _fetch_toy(server)
    assert ("data/S1/a.hf5", f"bytes={cut}-") in server.requests  # resumed, not restarted
    assert (root / "data/S1/a.hf5").read_bytes() == SERVER["data/S1/a.hf5"]


def test_a_server_ignoring_range_restarts_the_file(toy, home):
    server = FakeServer(fail_after={"data/S1/b.hf5": 100}, ignore_range=True)
    with pytest.raises(FetchError):
        _fetch_toy(server)
    _fetch_toy(server)
    assert (home / "toy" / "data/S1/b.hf5").read_bytes() == SERVER["data/S1/b.hf5"]


def test_offline_fails_at_once_naming_the_command_and_folder(toy, home, monkeypatch):
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    server = FakeServer()
    with pytest.raises(FetchError, match=r"offline.*`brainalign data fetch toy --runs a`.*" + re.escape(str(home / "toy"))):
        _fetch_toy(server, runs=["a"])
    assert server.requests == []
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "0")
    _fetch_toy(server)
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    assert _fetch_toy(server).fetched == []  # offline with everything present: nothing to do, no error


def test_a_corrupt_local_file_is_fetched_again(toy, home):
    server = FakeServer()
    _fetch_toy(server)
    target = home / "toy" / "data/S1/a.hf5"
    target.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * (len(SERVER["data/S1/a.hf5"]) - 8))  # right size, wrong bytes
    statuses = {s.path: s for s in fetch.verify("toy", rehash=True, progress=False)}
    assert statuses["data/S1/a.hf5"].state == "corrupt" and "md5" in statuses["data/S1/a.hf5"].detail
    assert statuses["data/S1/b.hf5"].state == "valid" and statuses["derivative/respdict.json"].state == "present"
    report = _fetch_toy(server)
    assert report.fetched == ["data/S1/a.hf5"] and target.read_bytes() == SERVER["data/S1/a.hf5"]


def test_a_file_without_a_published_checksum_is_trusted_on_first_download(toy, home, tmp_path, monkeypatch):
    """Its md5 is recorded at the first download; a later check compares with it, and a re-download that differs is rejected."""
    labels = b"words,sen_len\nThis,3\nis,3\n"
    toy["files"].append({"path": "labels/{run}.csv", "per": ["run"], "runs": ["a"],
                         "url": "https://example.org/toy/released/{run}_labels.csv", "checksum": "first-download"})
    (fetch.manifest.FILE_MANIFESTS / "toy.json").write_text(json.dumps(toy))
    spec = next(f for f in fetch.plan("toy").files if f.path.startswith("labels/"))
    assert spec.path == "labels/a.csv" and spec.url.endswith("/released/a_labels.csv") and spec.trust_first
    assert [f.path for f in fetch.plan("toy", runs=["b"]).files if f.trust_first] == []  # only the group's runs
    server = FakeServer({**SERVER, "released/a_labels.csv": labels})
    http = HTTPTransport(opener=server, progress=False)
    report = fetch.fetch("toy", transport=HTTPTransport("https://example.org/toy/", opener=server, progress=False),
                         http=http, progress=False)
    assert "labels/a.csv" in report.fetched
    status = {s.path: s for s in fetch.verify("toy", progress=False)}
    assert status["labels/a.csv"].state == "valid"  # checked against the recorded md5, not merely present
    # the file changes on disk: the check against the first download's md5 says so
    (home / "toy" / "labels/a.csv").write_bytes(labels.replace(b"3", b"1"))
    status = {s.path: s for s in fetch.verify("toy", progress=False)}
    assert status["labels/a.csv"].state == "corrupt" and "recorded at its first download" in status["labels/a.csv"].detail
    # fetched again, a server copy that differs from the first download is rejected and nothing is put in place
    server.files["released/a_labels.csv"] = labels + b"more,1\n"
    with pytest.raises(FetchError, match="labels/a.csv: rejected: md5 .*recorded at its first download"):
        fetch.fetch("toy", transport=HTTPTransport("https://example.org/toy/", opener=server, progress=False),
                    http=http, progress=False)
    assert not (home / "toy" / fetch.STAGING / "labels/a.csv").exists()


def test_http_cannot_fetch_a_file_set(tmp_path):
    out = HTTPTransport("https://example.org/", opener=FakeServer()).fetch([FileSpec("x/*.hf5", tmp_path)], tmp_path)
    assert "plain HTTP cannot list" in out["x/*.hf5"]


# -- the plans of the real datasets ------------------------------------------------------
def test_plans_follow_the_manifests(home):
    leb = fetch.plan("lebel2023")
    paths = [f.path for f in leb.files]
    assert leb.subjects == ["UTS01", "UTS02", "UTS03"] and "derivative/respdict.json" in paths
    assert sum(p.startswith("derivative/TextGrids/") for p in paths) == 84
    assert sum(p.startswith("derivative/preprocessed_data/") for p in paths) == 3 * 84
    known = {f.path: f for f in leb.files if f.md5}
    assert known["derivative/preprocessed_data/UTS01/wheretheressmoke.hf5"].size == 2077476776
    small = fetch.plan("lebel2023", subjects=["UTS05", "UTS09"], runs=["souls", "bluehope"])
    paths = [f.path for f in small.files]
    assert "derivative/preprocessed_data/UTS05/souls.hf5" in paths
    assert "derivative/preprocessed_data/UTS05/bluehope.hf5" not in paths  # UTS05 did not hear bluehope
    assert "derivative/preprocessed_data/UTS09/*.hf5" in paths and "UTS09" in small.notes[0]
    narr = fetch.plan("narratives")
    assert narr.runs == ["21styear"] and len(narr.subjects) == 18 and "sub-244" in narr.subjects
    assert sum(p.path.endswith(".func.gii") for p in narr.files) == 36
    assert any(p.path.endswith("desc-MMP_dseg.label.gii") for p in narr.files)
    nm = fetch.plan("neuromod", subjects=["sub-03"], runs=["s02e05b", "wolf07"])
    paths = [f.path for f in nm.files]
    assert "stimuli/transcripts/friends/s2/friends_s02e05b.tsv" in paths
    assert "stimuli/transcripts/movie10/wolf/movie10_wolf07.tsv" in paths
    atlas = [f for f in nm.files if f.url]
    assert len(atlas) == 1 and atlas[0].root == home / "atlases" and "CBIG" in atlas[0].url
    # the movies (tens of GB) only when asked for: the runs' .mkv files, named as the release names them
    assert not any(p.endswith(".mkv") for p in paths) and any("--include movies" in n for n in nm.notes)
    movies = fetch.plan("neuromod", subjects=["sub-03"], runs=["s02e05b", "wolf07"], include=["movies"])
    assert sorted(f.path for f in movies.files if f.path.endswith(".mkv")) == [
        "stimuli/movies/friends/s2/friends_s02e05b.mkv", "stimuli/movies/movie10/wolf/wolf07.mkv"]
    assert set(paths) < {f.path for f in movies.files}
    assert fetch.command("neuromod", runs=["wolf07"], include=["movies"]) == \
        "brainalign data fetch neuromod --runs wolf07 --include movies"


def test_bad_selections_name_the_valid_ones():
    with pytest.raises(FetchError, match="unknown subject.*UTS10.*UTS01"):
        fetch.plan("lebel2023", subjects=["UTS10"])
    with pytest.raises(FetchError, match="unknown run.*nostory.*adollshouse"):
        fetch.plan("lebel2023", runs=["nostory"])
    with pytest.raises(FetchError, match="sub-<label>"):
        fetch.plan("narratives", subjects=["244"])
    with pytest.raises(ValueError, match="cannot be fetched.*lebel2023.*simulate"):
        fetch.plan("simulated")
    with pytest.raises(FetchError, match=r"unknown optional file group\(s\) \['films'\] of neuromod; valid: \['movies'\]"):
        fetch.plan("neuromod", include=["films"])
    with pytest.raises(FetchError, match=r"unknown optional file group\(s\) \['movies'\] of lebel2023; valid: none"):
        fetch.plan("lebel2023", include=["movies"])
    with pytest.raises(FetchError, match="via 'ftp'.*openneuro"):
        fetch.fetch("lebel2023", via="ftp")


def test_file_manifests_are_consistent_with_the_split_manifests():
    from brainalign.datasets import read_manifest

    leb = fetch.file_manifest("lebel2023")
    assert sorted(leb["runs"]) == sorted(REAL_RESPDICT)
    for subject, runs in leb["subjects"].items():
        assert runs in ("*", None) or set(runs) <= set(REAL_RESPDICT), subject
    nm, nm_split = fetch.file_manifest("neuromod"), read_manifest("neuromod")
    assert set(nm_split["train"] + nm_split["test"]) <= set(nm["runs"]["friends"])
    assert set(nm_split["splits"]["movie10"]["train"] + nm_split["splits"]["movie10"]["test"]) == set(nm["runs"]["movie10"])
    assert set(fetch.file_manifest("narratives")["run_subjects"]["21styear"]) == set(read_manifest("narratives")["subjects"])
    for name in fetch.FETCHABLE:
        man = fetch.file_manifest(name)
        everything = {f.path for f in fetch.plan(name, subjects=[s for s in man["subjects"]] or None).files}
        for path, known in man["checksums"].items():
            assert isinstance(known["size"], int) and known["size"] > 0 and re.fullmatch(r"[0-9a-f]{32}", known["md5"])
            assert path in everything or any(Path(path).match(p) for p in everything), path


# -- openneuro-py and DataLad, faked ----------------------------------------------------------
def _fake_openneuro(remote: dict[str, bytes], calls: list):
    """A stand-in for openneuro.download: writes the matching remote files into target_dir."""

    def download(*, dataset, tag, target_dir, include, exclude, max_concurrent_downloads):
        calls.append({"dataset": dataset, "include": list(include), "exclude": list(exclude or [])})
        for pattern in include:
            matches = [p for p in remote if Path(p).match(pattern) and p.count("/") == pattern.count("/")]
            if not matches:
                raise RuntimeError(f"Could not find path in the dataset:\n- {pattern}")
            for p in matches:
                if p in (exclude or []):
                    continue
                out = Path(target_dir) / p
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(remote[p])
        (Path(target_dir) / "dataset_description.json").write_text("{}")  # openneuro-py always adds it

    return download


def _textgrid(words: list[tuple[str, float, float]], end: float) -> bytes:
    items = "".join(f'        intervals [{i}]:\n            xmin = {a}\n            xmax = {b}\n            text = "{w}"\n'
                    for i, (w, a, b) in enumerate(words, 1))
    text = ('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {end}\ntiers? <exists>\nsize = 2\n'
            'item []:\n    item [1]:\n        class = "IntervalTier"\n        name = "phone"\n        xmin = 0\n'
            '        xmax = {end}\n        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n'
            '            xmax = {end}\n            text = ""\n    item [2]:\n        class = "IntervalTier"\n'
            '        name = "word"\n        xmin = 0\n        xmax = {end}\n        intervals: size = {n}\n{items}')
    return text.format(end=end, n=len(words), items=items).encode()


def test_openneuro_fetch_then_load(home, tmp_path):
    """fetch lebel2023 through a fake openneuro-py, then the loader reads what arrived."""
    story, n = "souls", REAL_RESPDICT["souls"] - 20
    remote = {
        "derivative/respdict.json": json.dumps(REAL_RESPDICT).encode(),
        f"derivative/TextGrids/{story}.TextGrid": _textgrid([("so", 1.0, 1.4), ("sp", 1.4, 1.6), ("it", 1.6, 2.0)], 740.0),
        f"derivative/preprocessed_data/UTS01/{story}.hf5": _hdf5_bytes(n, seed=3),
        "derivative/preprocessed_data/UTS09/naked.hf5": _hdf5_bytes(3, seed=4),
        "derivative/preprocessed_data/UTS09/souls.hf5": _hdf5_bytes(n, seed=5),
    }
    calls = []
    root = tmp_path / "ds003020"
    transport = OpenNeuroTransport("ds003020", download=_fake_openneuro(remote, calls))
    report = fetch.fetch("lebel2023", subjects=["UTS01"], runs=[story], root=root, transport=transport, progress=False)
    assert calls[0]["dataset"] == "ds003020" and sorted(report.fetched) == sorted(calls[0]["include"])
    ds = load_dataset("lebel2023", root=root)
    assert ds.runs == [story] and ds.responses("UTS01", story).shape == (n, 4)
    assert list(ds.words(story)["word"]) == ["so", "it"]
    # a subject whose runs the manifest does not list: fetched as a set, then not asked for again
    fetch.fetch("lebel2023", subjects=["UTS09"], runs=[story], root=root, transport=transport, progress=False)
    assert "derivative/preprocessed_data/UTS09/*.hf5" in calls[1]["include"]
    assert (root / "derivative/preprocessed_data/UTS09/naked.hf5").exists()
    fetch.fetch("lebel2023", subjects=["UTS09"], runs=[story], root=root, transport=transport, progress=False)
    assert len(calls) == 2


def test_openneuro_errors_are_reported_and_partial_sets_exclude_what_is_there(home, tmp_path):
    calls = []
    root = tmp_path / "ds003020"
    remote = {"derivative/respdict.json": json.dumps(REAL_RESPDICT).encode(),
              "derivative/preprocessed_data/UTS09/a.hf5": _hdf5_bytes(3, seed=6),
              "derivative/preprocessed_data/UTS09/b.hf5": _hdf5_bytes(3, seed=7)}
    (root / "derivative/preprocessed_data/UTS09").mkdir(parents=True)
    (root / "derivative/preprocessed_data/UTS09/a.hf5").write_bytes(remote["derivative/preprocessed_data/UTS09/a.hf5"])
    transport = OpenNeuroTransport("ds003020", download=_fake_openneuro(remote, calls))
    with pytest.raises(FetchError, match="openneuro-py: RuntimeError: Could not find path"):  # no TextGrid remotely
        fetch.fetch("lebel2023", subjects=["UTS09"], runs=["souls"], root=root, transport=transport, progress=False)
    assert calls[0]["exclude"] == ["derivative/preprocessed_data/UTS09/a.hf5"]


def test_datalad_installs_then_gets(home, tmp_path):
    """narratives through a fake `datalad`: install the superdataset once, then get only the planned paths."""
    commands = []
    root = tmp_path / "narratives"

    def runner(cmd, cwd):
        commands.append(cmd)
        if cmd[1] == "install":
            (Path(cmd[-1]) / ".datalad").mkdir(parents=True)
        elif cmd[1] == "get" and "-n" not in cmd:
            for rel in cmd[cmd.index("-d") + 2 :]:
                out = root / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text("{}" if rel.endswith(".json") else "<?xml version='1.0'?><GIFTI/>" if rel.endswith(".gii")
                               else "word,word,1.0,1.2\n")

    urls = []

    def opener(request):  # the study's label file and the parser's model come over HTTP, each from a fixed URL
        urls.append(request.full_url)
        if request.full_url.endswith(".zip"):
            return FakeResponse(b"PK\x05\x06" + bytes(18))  # an empty zip archive
        return FakeResponse(b"words,sen_len,tree_depth,top_const,tense,subjnum,objnum\nThis,3,5,1,2,1,1\n")

    transport = DataLadTransport("https://datasets.datalad.org/labs/hasson/narratives", runner=runner)
    http = HTTPTransport(opener=opener, progress=False)
    report = fetch.fetch("narratives", subjects=["sub-244"], root=root, transport=transport, http=http, progress=False)
    assert commands[0][:4] == ["datalad", "install", "-s", "https://datasets.datalad.org/labs/hasson/narratives"]
    got = [p for c in commands[1:] for p in c[6:]]
    assert "derivatives/afni-nosmooth/sub-244/func/sub-244_task-21styear_space-fsaverage6_hemi-L_desc-clean.func.gii" in got
    assert {"stimuli/gentle/21styear/align.csv", "stimuli/gentle/21styear/transcript.txt", "stimuli/21styear_audio.wav"} <= set(got)
    assert len(got) == 9
    assert sorted(report.fetched) == sorted(got + ["stimuli/oota2023/21styear_probing_labels.csv", "benepar_en3.zip"])
    assert urls == ["https://raw.githubusercontent.com/subbareddy248/lingprop-brain-alignment/56c214b14a45bc88c0da3b2e4596b65ecf495619"
                    "/stimulus_resources/balanced_21styear_probing_labels.csv",
                    "https://github.com/nikitakit/self-attentive-parser/releases/download/models/benepar_en3.zip"]
    assert (home / "parsers" / "benepar_en3.zip").is_file()  # beside the datasets, where the parser's loader looks
    n = len(commands)
    fetch.fetch("narratives", subjects=["sub-244"], root=root, transport=transport, http=http, progress=False)
    assert len(commands) == n and len(urls) == 2  # all there: no datalad call, no download


def test_datalad_missing_or_no_access_fails_at_once(home, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.transports.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="datalad.*pip install datalad.*git-annex.*brainalign data fetch narratives"):
        fetch.fetch("narratives", root=tmp_path / "n", progress=False)
    root = tmp_path / "algonauts"
    with pytest.raises(FetchError, match=r"sign-up.*forms\.gle.*datalad install -r -s .*algonauts_2025.*" + re.escape(str(root))):
        fetch.fetch("neuromod", root=root, progress=False)
    assert not root.exists()


# -- the command line ---------------------------------------------------------------------
def test_cli_fetch_and_verify(home, monkeypatch, capsys):
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    assert cli.main(["data", "fetch", "lebel2023", "--subjects", "UTS01", "--runs", "souls"]) == 1
    err = capsys.readouterr().err
    assert "brainalign data fetch lebel2023 --subjects UTS01 --runs souls" in err and str(home / "ds003020") in err
    assert cli.main(["data", "fetch", "narratives", "--dry-run"]) == 0
    assert "21styear" in capsys.readouterr().out
    assert cli.main(["data", "verify", "neuromod"]) == 1
    out = capsys.readouterr().out
    assert "0 valid" in out and "MISSING fmri/sub-01/func/" in out and "brainalign data fetch neuromod" in out
    with pytest.raises(SystemExit, match="generated, not fetched"):
        cli.main(["data", "fetch", "simulated"])
    with pytest.raises(SystemExit, match="unknown dataset 'nope'"):
        cli.main(["data", "verify", "nope"])


def test_cli_verify_reports_present_and_corrupt(home, capsys):
    root = home / "ds003020" / "derivative"
    (root / "preprocessed_data" / "UTS02").mkdir(parents=True)
    (root / "respdict.json").write_text(json.dumps(REAL_RESPDICT))
    (root / "preprocessed_data" / "UTS02" / "adollshouse.hf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert cli.main(["data", "verify", "lebel2023", "--runs", "adollshouse"]) == 1
    out = capsys.readouterr().out  # the subjects on disk (UTS02) are checked
    assert "1 present" in out and "CORRUPT derivative/preprocessed_data/UTS02/adollshouse.hf5: 108 bytes, expected 181717976" in out
    assert "MISSING derivative/TextGrids/adollshouse.TextGrid" in out


def test_cli_verify_simulated_still_works(cohort, capsys, monkeypatch):
    monkeypatch.setenv("BRAINALIGN_DATA", str(cohort.root.parent.parent))
    assert cli.main(["data", "verify"]) == 0
    assert "fingerprint" in capsys.readouterr().out
