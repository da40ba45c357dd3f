import json
import subprocess
import sys

import numpy as np
import pytest

from brainalign import config
from brainalign.results import (
    KINDS,
    Report,
    check_choice,
    check_items,
    check_parameters,
    check_range,
    declared,
    failed_validations,
    ledger_markdown,
    output_folder,
    peak_memory_mb,
)


def test_check_choice_names_value_and_valid():
    check_choice("model", "a", ["a", "b"])
    with pytest.raises(ValueError, match=r"'c'.*\['a', 'b'\]"):
        check_choice("model", "c", ["a", "b"])


def test_check_items_and_check_range_name_the_value_and_what_is_valid():
    assert check_items("layer", (0, 2), range(3)) == [0, 2]
    with pytest.raises(ValueError, match=r"no layer given \(an empty list\); valid: \[0, 1, 2\]"):
        check_items("layer", [], range(3))
    with pytest.raises(ValueError, match="unknown layer 5"):
        check_items("layer", [0, 5], range(3))
    check_range("delays", [0, 1, 4], 0)
    check_range("alpha", 0.05, 0, 1)
    with pytest.raises(ValueError, match=r"delays=-1 is out of range; valid: \[0, inf\]"):
        check_range("delays", [1, -1], 0)
    with pytest.raises(ValueError, match="delays is an empty list"):
        check_range("delays", [], 0)
    with pytest.raises(ValueError, match=r"alpha=1.5 is out of range; valid: \[0, 1\]"):
        check_range("alpha", 1.5, 0, 1)
    with pytest.raises(ValueError, match="n_folds='5' is not a number"):
        check_range("n_folds", "5", 2)


def test_check_parameters_catches_injected_typo():
    namespace = {"dataset": "simulated", "layer": 3, "np": __import__("numpy"), "In": [], "_x": 1}
    assert check_parameters(namespace, ["dataset", "layer"]) == {"dataset": "simulated", "layer": 3}
    with pytest.raises(ValueError, match="unknown parameter.*'layr'.*valid parameters"):
        check_parameters({**namespace, "layr": 4}, ["dataset", "layer"])
    with pytest.raises(ValueError, match="not defined"):
        check_parameters({"dataset": "x"}, ["dataset", "layer"])


ITEMS = [
    {"id": "found", "kind": "validation", "claim": "a planted effect is found", "criterion": "r > {threshold}",
     "test": "none"},
    {"id": "flat", "kind": "validation", "claim": "the null is flat", "criterion": "|r| < 0.02", "test": "none"},
    {"id": "gain", "kind": "claim", "claim": "the paper's effect holds", "criterion": "gain > 0", "test": "none",
     "paper": "+50%", "source": "Fig. 2"},
    {"id": "depth", "kind": "claim", "claim": "removing depth lowers alignment", "criterion": "drop > 0",
     "test": "Wilcoxon", "paper": "significant drop", "source": "Fig. 3"},
]


def test_report_json_and_ledger(tmp_path):
    r = Report("00_test", {"seed": 0}, "simulated", True, items=ITEMS)
    r.check("found", 0.3, True, threshold=0.1)
    r.check("flat", 0.05, False)
    r.not_testable("depth", "the model does not encode depth")
    path = r.write(tmp_path)
    data = json.loads(path.read_text())
    assert data["simulated"] is True and data["validations_passed"] is False
    assert data["checks"][0]["expected"] == "r > 0.1" and data["checks"][0]["verdict"] == "passed"
    assert [c["verdict"] for c in data["checks"]] == ["passed", "failed", "not testable here", "not evaluated"]
    assert data["missing"] == ["gain"] and data["checks"][3]["why"] == "not reached in this run"
    assert data["peak_memory_mb"] > 0 and "numpy" in data["versions"]
    (tmp_path / "00_test.split.json").write_text(json.dumps({"train": ["a"], "test": ["b"]}))  # a manifest, not results
    page = ledger_markdown(tmp_path)
    assert "| 00_test | simulated | 0 | 0 | 1 | 1 | 1 of 2 |" in page
    assert "| the null is flat | \\|r\\| < 0.02 | 0.05 | **failed** |" in page
    assert "not testable here: the model does not encode depth" in page
    assert "Declared but neither evaluated nor marked in this run: gain" in page
    old = {**data, "notebook": "01_old", "checks": [{"claim": "x", "expected": "y", "observed": 1, "passed": True}]}
    del old["missing"]
    (tmp_path / "01_old.json").write_text(json.dumps(old))  # a run from before the checks were declared
    page = ledger_markdown(tmp_path)
    assert "not shown: 01_old; run `make run` again" in page and "## 00_test" in page and "## 01_old" not in page


def test_claims_have_verdicts_and_only_validations_fail_a_run(tmp_path):
    r = Report("00_test", {"seed": 0}, "simulated", True, items=ITEMS)
    r.check("found", 0.3, True, threshold=0.1)
    r.check("gain", -0.01, False)
    r.not_evaluated("flat", "this set has no null")
    r.check("depth", 0.2, True)
    data = json.loads(r.write(tmp_path).read_text())
    assert data["validations_passed"] is True and data["missing"] == []
    assert data["checks"][1]["verdict"] == "not reproduced" and data["checks"][1]["source"] == "Fig. 2"
    assert failed_validations(data["checks"]) == []
    page = ledger_markdown(tmp_path)
    assert "| 00_test | simulated | 1 | 1 | 0 | 0 | 1 of 2 |" in page
    assert "| the paper's effect holds | +50% (Fig. 2) | gain > 0 | -0.01 | not reproduced |" in page


def test_only_declared_items_are_checked_once_each(tmp_path):
    r = Report("00_test", {}, "simulated", True, items=ITEMS)
    with pytest.raises(ValueError, match=r"unknown check of 00_test 'guess'; valid: \['found', 'flat', 'gain', 'depth'\]"):
        r.check("guess", 0, True)
    with pytest.raises(ValueError, match="needs the field 'threshold'"):
        r.check("found", 0.3, True)
    with pytest.raises(ValueError, match="is a validation"):
        r.not_testable("flat", "why")
    r.check("flat", 0.0, True)
    with pytest.raises(ValueError, match="'flat' of 00_test was already recorded"):
        r.check("flat", 0.0, True)
    assert r.missing() == ["found", "gain", "depth"]


def test_on_real_data_validations_are_not_evaluated_and_claims_are(tmp_path):
    r = Report("00_test", {}, "lebel2023", False, items=ITEMS)
    data = r.as_dict()
    assert data["missing"] == ["gain", "depth"]
    assert {c["id"]: c["why"] for c in data["checks"] if c["kind"] == "validation"} == {
        "found": "real data: no planted truth", "flat": "real data: no planted truth"}


def test_every_notebook_has_its_checks_declared():
    from brainalign.runner import load_runs

    for notebook in load_runs():
        items = declared(notebook)
        assert items and all(item["kind"] in KINDS for item in items), notebook
    with pytest.raises(ValueError, match="no checks are declared for '99_nope'"):
        declared("99_nope")


def test_a_malformed_declaration_is_refused(tmp_path):
    path = tmp_path / "claims.yml"
    path.write_text("00_test:\n  - {id: a, kind: claim, claim: x, criterion: y, test: none}\n")
    with pytest.raises(ValueError, match=r"\['paper', 'source'\] missing"):
        declared("00_test", path)
    path.write_text("00_test:\n  - {id: a, kind: guess, claim: x, criterion: y, test: none}\n")
    with pytest.raises(ValueError, match="unknown kind of check"):
        declared("00_test", path)


def test_results_go_to_the_book_in_a_checkout_and_to_a_local_folder_outside(tmp_path, monkeypatch):
    assert output_folder(tmp_path / "x") == tmp_path / "x"
    assert output_folder() == config.repo_root() / "book" / "_run"
    monkeypatch.setattr(config, "repo_root", lambda: None)  # a notebook opened alone, as on Colab
    monkeypatch.chdir(tmp_path)
    path = Report("00_test", {}, "simulated", True, items=ITEMS).write()
    assert path.resolve() == tmp_path / "brainalign_results" / "00_test.json"
    assert json.loads(path.read_text())["notebook"] == "00_test"


def test_peak_memory_is_the_process_own_not_its_parents():
    """A notebook kernel started by a large process (a test session) reports its own peak, not the parent's."""
    ballast = np.ones(600 * 2**20 // 8)  # 600 MB resident in this process when the child is forked
    child = subprocess.run([sys.executable, "-c", "from brainalign.results import peak_memory_mb; print(peak_memory_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 400, child.stdout  # numpy and brainalign alone: about 100 MB
    assert peak_memory_mb() >= 600 and ballast.sum() > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_release_memory_gives_freed_heap_back_to_the_system():
    import ctypes
    import ctypes.util

    import psutil

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    size, proc = 64 * 1024, psutil.Process()  # under glibc's mmap threshold: on the heap
    chunks = [libc.malloc(size) for _ in range(4000)]  # 256 MB
    for c in chunks:
        ctypes.memset(c, 1, size)
    top = libc.malloc(size)  # above the freed chunks: the heap cannot shrink from its top by itself
    for c in chunks:
        libc.free(c)
    held = proc.memory_info().rss
    assert config.release_memory() is True
    assert held - proc.memory_info().rss > 200 * 2**20
    libc.free(top)
