"""`brainalign sweep`: grids of notebook runs on Dask. One local cluster of 2 worker processes serves the module.

The fault tests run cells that sleep (a stand-in executor, given through ``run_sweep(execute=...)``) so that a worker
can be killed mid-cell cheaply; one test runs real papermill cells of the quickstart end to end.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from brainalign import sweep
from brainalign.cli import main as cli_main

distributed = pytest.importorskip("distributed")


# -- stand-in executors (run on the workers) ------------------------------------------------------------------------

def log_start(log: Path, overrides: dict) -> None:
    (log / f"start-{overrides['seed']}-{os.getpid()}-{time.time_ns()}").touch()


def sleepy_cell(notebook, set_name, overrides, out_dir, log, seconds=2.0):
    """A cell whose 'kernel' is a child process that writes the result after ``seconds``, as papermill's kernel does."""
    log_start(Path(log), overrides)
    code = "import sys, time; time.sleep(float(sys.argv[2])); open(sys.argv[1], 'w').write(sys.argv[3])"
    kernel = subprocess.Popen([sys.executable, "-c", code, str(out_dir / "result.txt"), str(seconds), out_dir.name],
                              start_new_session=True)  # like a kernel, it outlives a killed worker
    if kernel.wait() != 0:
        raise RuntimeError("the kernel failed")
    (out_dir / f"{notebook}.json").write_text(json.dumps({"notebook": notebook, "parameters": overrides, "checks": []}))


def resumable_cell(notebook, set_name, overrides, out_dir, log, release):
    """Seeds 0 and 1 finish at once; the others wait for ``release`` (the sweep is interrupted meanwhile)."""
    log_start(Path(log), overrides)
    deadline = time.time() + 30
    while overrides["seed"] >= 2 and not Path(release).exists() and time.time() < deadline:
        time.sleep(0.1)
    (out_dir / f"{notebook}.json").write_text(json.dumps({"notebook": notebook, "parameters": overrides, "checks": []}))


def failing_cell(notebook, set_name, overrides, out_dir):
    if overrides["seed"] == 1:
        raise ValueError("planted failure")
    (out_dir / f"{notebook}.json").write_text("{}")


def starts(log: Path) -> dict[int, int]:
    """Seed -> how many attempts started."""
    counts: dict[int, int] = {}
    for p in log.iterdir():
        seed = int(p.name.split("-")[1])
        counts[seed] = counts.get(seed, 0) + 1
    return counts


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (one cell at a time each), as `--cluster local` makes on 2 cores."""
    with sweep.make_cluster("local", n_workers=2, retries=2) as cluster, distributed.Client(cluster) as c:
        yield c


# -- planning, validation, job scripts (no cluster) -----------------------------------------------------------------

def test_grid_is_parsed_and_expanded_in_order():
    grid = sweep.parse_grid(["layer=0,3", "layers=[0, 3],[6]", "model=minilm-l6"])
    assert grid == {"layer": [0, 3], "layers": [[0, 3], [6]], "model": ["minilm-l6"]}
    points = sweep.expand_grid(grid)
    assert points == [{"layer": a, "layers": b, "model": "minilm-l6"} for a in (0, 3) for b in ([0, 3], [6])]
    for bad, message in [("layer", "expected NAME=V1"), ("layer=", "expected NAME=V1"), ("2x=1", "expected NAME=V1")]:
        with pytest.raises(ValueError, match=message):
            sweep.parse_grid([bad])
    with pytest.raises(ValueError, match="given twice"):
        sweep.parse_grid(["seed=0", "seed=1"])
    with pytest.raises(ValueError, match="non-empty list"):
        sweep.expand_grid({"seed": []})


def test_every_cell_is_validated_before_anything_runs(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['layr'\].*valid parameters"):
        sweep.plan_cells("00_quickstart", "smoke", {"layr": [0, 3]})
    with pytest.raises(ValueError, match="unknown notebook '99_nope'"):
        sweep.plan_cells("99_nope")
    with pytest.raises(ValueError, match="unknown parameter set 'fast'"):
        sweep.plan_cells("00_quickstart", "fast")
    with pytest.raises(SystemExit, match=r"error: unknown parameter\(s\) \['layr'\]"):
        cli_main(["sweep", "00_quickstart", "--set", "smoke", "--grid", "layer=0", "--grid", "layr=0,3", "--dry-run"])
    with pytest.raises(ValueError, match="both as a grid and with -p"):
        sweep.plan_cells("00_quickstart", "smoke", {"seed": [0, 1]}, {"seed": 2})
    with pytest.raises(ValueError, match=r"\['out_dir'\] are set by the sweep"):
        sweep.plan_cells("00_quickstart", "smoke", {"out_dir": ["a"]})
    seen = []

    def check(notebook, params):  # a value check called for every cell, before any runs
        seen.append(params["layer"])
        if params["layer"] == 99:
            raise ValueError("unknown layer 99; valid: 0..6")

    with pytest.raises(ValueError, match="unknown layer 99"):
        sweep.plan_cells("00_quickstart", "smoke", {"layer": [0, 99, 3]}, validate=check)
    assert seen == [0, 99]
    cells = sweep.plan_cells("00_quickstart", "smoke", {"layer": [0, 3, 0]}, {"seed": 1})
    assert [c.overrides for c in cells] == [{"seed": 1, "layer": 0}, {"seed": 1, "layer": 3}]  # the repeat is one cell
    assert cells[0].params["subjects"] == ["S01"] and cells[0].params["n_permutations"] == 200  # the smoke set
    assert len({c.id for c in cells}) == 2 and all(len(c.id) == 16 for c in cells)
    # the id names the parameters; the key also hashes the library's source, so a code change reruns the cell
    monkeypatch.setattr(sweep.cells, "library_digest", lambda: "0" * 64)
    again = sweep.plan_cells("00_quickstart", "smoke", {"layer": [0, 3]}, {"seed": 1})
    assert [c.id for c in again] == [c.id for c in cells] and again[0].key != cells[0].key


def test_slurm_job_script_asks_for_what_was_given():
    """The job script dask-jobqueue would submit (no SLURM here: nothing is submitted)."""
    with sweep.make_cluster("slurm", cores=8, memory="32GB", gpus=1, walltime="04:00:00", queue="gpu") as cluster:
        script = cluster.job_script()
    for line in ["#SBATCH -p gpu", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G", "#SBATCH -t 04:00:00",
                 "#SBATCH --gres=gpu:1"]:
        assert line in script, script
    assert "--nthreads 8" in script and "--resources cell=1" in script and "--nanny" in script
    with sweep.make_cluster("pbs", cores=2, memory="8GB", gpus=2, walltime="01:00:00") as cluster:
        assert "#PBS -l ngpus=2" in cluster.job_script()
    with pytest.raises(ValueError, match="unknown cluster 'kubernetes'; valid"):
        sweep.make_cluster("kubernetes")
    with pytest.raises(ValueError, match=r"\['memory'\] are for a batch system"):
        sweep.make_cluster("local", memory="4GB")


# -- on the local cluster -------------------------------------------------------------------------------------------

def test_notebook_cells_end_to_end_then_skipped_then_reported(client, tmp_path, capsys):
    """Two real papermill cells of the quickstart's smoke set (the layer drawn on the brain: a cheap knob)."""
    result = sweep.run_sweep("00_quickstart", "smoke", {"layer": [0, 3]}, name="quick", out_dir=tmp_path,
                             client=client, threads=1, progress=False)
    assert not result.failed, result.failed
    assert sorted(result.done) == sorted(c.id for c in result.cells) and len(result.done) == 2
    for cell in result.cells:
        folder = tmp_path / "quick" / cell.id
        record = json.loads((folder / "cell.json").read_text())
        assert record["status"] == "done" and record["key"] == cell.key
        assert {"00_quickstart.ipynb", "00_quickstart.json"} <= set(record["outputs"])
        results = json.loads((folder / "00_quickstart.json").read_text())
        assert results["parameters"]["layer"] == cell.overrides["layer"] and results["checks"]
        assert results["parameters"]["subjects"] == ["S01"]
    assert sorted(p.name for p in (tmp_path / "quick").iterdir()) == sorted([c.id for c in result.cells] + ["sweep.json"])
    again = sweep.run_sweep("00_quickstart", "smoke", {"layer": [0, 3]}, name="quick", out_dir=tmp_path,
                            client=client, progress=False)
    assert sorted(again.skipped) == sorted(result.done) and not again.done
    argv = ["sweep", "00_quickstart", "--set", "smoke", "--grid", "layer=0,3", "--name", "quick", "--out-dir", str(tmp_path)]
    assert cli_main(argv) == 0  # from the command line: nothing left to run, no cluster started
    assert "0 run, 2 already done, 0 failed" in capsys.readouterr().out
    assert cli_main(["sweep-report", "quick", "--out-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 cells done" in printed and "layer" in printed and "headline" in printed
    cells, curves = sweep.sweep_report(tmp_path / "quick")
    assert sorted(cells.layer) == [0, 3] and cells.headline.notna().all()
    layers = result.cells[0].params["layers"]  # the smoke set's fitted layers: one curve point each, per cell
    assert sorted(curves.layer.unique()) == sorted(layers) and len(curves) == 2 * len(layers)
    assert (tmp_path / "quick" / "headline.png").stat().st_size > 1000


def test_killed_worker_cell_is_retried_and_done_once(client, tmp_path):
    log, out = tmp_path / "log", tmp_path / "out"
    log.mkdir()
    killed = []

    def kill_first_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for marker in log.iterdir():
                killed.append(int(marker.name.split("-")[1]))
                os.kill(int(marker.name.split("-")[2]), signal.SIGKILL)  # the worker process, mid-cell
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    from functools import partial

    result = sweep.run_sweep("00_quickstart", "smoke", {"seed": [0, 1, 2]}, name="faults", out_dir=out,
                             client=client, execute=partial(sleepy_cell, log=str(log)), progress=False)
    killer.join()
    assert killed, "no worker was killed"
    assert not result.failed and len(result.done) == 3 == len(set(result.done))
    counts = starts(log)
    assert counts[killed[0]] == 2 and sum(counts.values()) == 4, counts  # retried once, on another worker
    time.sleep(2.5)  # the killed attempt's orphaned kernel writes now: into its abandoned folder, never a result
    folder = out / "faults"
    cells = sorted(p for p in folder.iterdir() if p.is_dir())
    assert [p.name for p in cells] == sorted(c.id for c in result.cells)
    for cell in cells:
        record = json.loads((cell / "cell.json").read_text())
        assert record["status"] == "done"
        assert (cell / "result.txt").read_text() == record["attempt"]  # written by this attempt's own kernel
    assert not (folder / ".attempts").exists()


def test_interrupted_sweep_resumes_without_rerunning_finished_cells(client, tmp_path):
    from functools import partial

    log, out, release = tmp_path / "log", tmp_path / "out", tmp_path / "release"
    log.mkdir()
    execute = partial(resumable_cell, log=str(log), release=str(release))
    grid = {"seed": [0, 1, 2, 3]}
    ids = {c.overrides["seed"]: c.id for c in sweep.plan_cells("00_quickstart", "smoke", grid)}

    def interrupt_when_two_are_done():  # Ctrl-C once seeds 0 and 1 are in place and 2 and 3 are running
        deadline = time.time() + 60
        while time.time() < deadline:
            if all((out / "resume" / ids[s] / "cell.json").exists() for s in (0, 1)) and len(list(log.iterdir())) == 4:
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_two_are_done)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as at a terminal
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep.run_sweep("00_quickstart", "smoke", grid, name="resume", out_dir=out, client=client,
                            execute=execute, progress=False)
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, handler)
        release.touch()  # lets the abandoned attempts end
    assert sorted(p.name for p in (out / "resume").iterdir() if p.is_dir()) == sorted([ids[0], ids[1]])
    for p in log.iterdir():
        p.unlink()
    result = sweep.run_sweep("00_quickstart", "smoke", grid, name="resume", out_dir=out, client=client,
                             execute=execute, progress=False)
    assert sorted(result.skipped) == sorted([ids[0], ids[1]]) and sorted(result.done) == sorted([ids[2], ids[3]])
    assert starts(log) == {2: 1, 3: 1}  # the finished cells were not rerun


def test_failed_cell_is_recorded_and_the_summary_reruns_just_it(client, tmp_path):
    result = sweep.run_sweep("00_quickstart", "smoke", {"seed": [0, 1]}, name="fails", out_dir=tmp_path,
                             client=client, execute=failing_cell, progress=False)
    bad = next(c.id for c in result.cells if c.overrides["seed"] == 1)
    assert list(result.failed) == [bad] and "planted failure" in result.failed[bad] and len(result.done) == 1
    record = json.loads((tmp_path / "fails" / bad / "cell.json").read_text())
    assert record["status"] == "failed" and "ValueError: planted failure" in record["error"]
    summary = result.summary("brainalign sweep 00_quickstart --set smoke --grid seed=0,1")
    assert f"--grid seed=0,1 --only {bad}" in summary and "planted failure" in summary
    rerun = sweep.run_sweep("00_quickstart", "smoke", {"seed": [0, 1]}, name="fails", out_dir=tmp_path,
                            client=client, execute=failing_cell, only=[bad], progress=False)
    assert list(rerun.failed) == [bad] and not rerun.done and not rerun.skipped  # only the failed cell ran
    cells, curves = sweep.sweep_report(tmp_path / "fails")
    assert dict(zip(cells.cell, cells.status)) == {bad: "failed", result.done[0]: "done"} and curves.empty
    assert "planted failure" in cells.set_index("cell").loc[bad, "error"]
    table, figure = sweep.write_report(tmp_path / "fails")
    assert figure is None and "1 of 2 cells done" in table.read_text()
    with pytest.raises(ValueError, match="unknown cell id"):
        sweep.run_sweep("00_quickstart", "smoke", {"seed": [0, 1]}, out_dir=tmp_path, client=client, only=["beef"])
