import json
import subprocess
import sys

import numpy as np
import pytest

from brainalign import config
from brainalign.results import (
    Report,
    check_choice,
    check_parameters,
    failed_validations,
    ledger_markdown,
    output_folder,
    peak_memory_mb,
)


def test_check_choice_names_value_and_valid():
    check_choice("model", "a", ["a", "b"])
    with pytest.raises(ValueError, match=r"'c'.*\['a', 'b'\]"):
        check_choice("model", "c", ["a", "b"])


def test_check_parameters_catches_injected_typo():
    namespace = {"dataset": "simulated", "layer": 3, "np": __import__("numpy"), "In": [], "_x": 1}
    assert check_parameters(namespace, ["dataset", "layer"]) == {"dataset": "simulated", "layer": 3}
    with pytest.raises(ValueError, match="unknown parameter.*'layr'.*valid parameters"):
        check_parameters({**namespace, "layr": 4}, ["dataset", "layer"])
    with pytest.raises(ValueError, match="not defined"):
        check_parameters({"dataset": "x"}, ["dataset", "layer"])


def test_report_json_and_ledger(tmp_path):
    r = Report("00_test", {"seed": 0}, "simulated", True)
    r.check("a planted effect is found", "r > 0.1", 0.3, True)
    r.check("the null is flat", "|r| < 0.02", 0.05, False, paper="n/a")
    path = r.write(tmp_path)
    data = json.loads(path.read_text())
    assert data["simulated"] is True and data["all_passed"] is False
    assert {"claim", "expected", "observed", "passed"} <= set(data["checks"][0])
    assert data["peak_memory_mb"] > 0 and "numpy" in data["versions"]
    (tmp_path / "00_test.split.json").write_text(json.dumps({"train": ["a"], "test": ["b"]}))  # a manifest, not results
    page = ledger_markdown(tmp_path)
    assert "00_test" in page and "Validations: 1 of 2 passed" in page and "**no**" in page


def test_claims_have_verdicts_and_only_validations_fail_a_run(tmp_path):
    r = Report("00_test", {"seed": 0}, "simulated", True)
    r.check("the planted effect is found", "r > 0.1", 0.3, True)
    r.check("the paper's effect holds", "gain > 0", -0.01, False, paper="+50% (Fig. 2)", kind="claim")
    with pytest.raises(ValueError, match="unknown kind of check 'guess'"):
        r.check("x", "y", 0, True, kind="guess")
    data = json.loads(r.write(tmp_path).read_text())
    assert data["validations_passed"] is True and data["all_passed"] is False
    assert data["checks"][1]["verdict"] == "not reproduced" and "verdict" not in data["checks"][0]
    assert failed_validations(data["checks"]) == []
    page = ledger_markdown(tmp_path)
    assert "Claims: 0 of 1 reproduced. Validations: 1 of 1 passed." in page
    assert "| the paper's effect holds | gain > 0 | -0.01 | +50% (Fig. 2) | not reproduced |" in page
    r.check("nothing where nothing was planted", "|r| < 0.02", 0.05, False)
    assert failed_validations(r.as_dict()["checks"]) == ["nothing where nothing was planted"]


def test_results_go_to_the_book_in_a_checkout_and_to_a_local_folder_outside(tmp_path, monkeypatch):
    assert output_folder(tmp_path / "x") == tmp_path / "x"
    assert output_folder() == config.repo_root() / "book" / "_run"
    monkeypatch.setattr(config, "repo_root", lambda: None)  # a notebook opened alone, as on Colab
    monkeypatch.chdir(tmp_path)
    path = Report("00_test", {}, "simulated", True).write()
    assert path.resolve() == tmp_path / "brainalign_results" / "00_test.json"
    assert json.loads(path.read_text())["notebook"] == "00_test"


def test_peak_memory_is_the_process_own_not_its_parents():
    """A notebook kernel started by a large process (a test session) reports its own peak, not the parent's."""
    ballast = np.ones(600 * 2**20 // 8)  # 600 MB resident in this process when the child is forked
    child = subprocess.run([sys.executable, "-c", "from brainalign.results import peak_memory_mb; print(peak_memory_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 400, child.stdout  # numpy and brainalign alone: about 100 MB
    assert peak_memory_mb() >= 600 and ballast.sum() > 0
