"""A sweep's report: its cells in one table, and each notebook's headline measure across the grid."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..cache import atomic_write
from .cells import CELL_FILE

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Headline:
    """A notebook's headline measure, read from one table of its results json.

    Parameters
    ----------
    table : str
        Name of the table (``Report.table``) in the results json.
    value : str
        Column plotted (e.g. held-out Pearson r).
    x : str
        Column on the figure's x axis (e.g. ``"layer"``); each cell is one line.
    where : mapping
        Rows kept: column -> value (e.g. ``{"roi": "language"}``).
    label : str
        Axis label of ``value``.
    """

    table: str
    value: str
    x: str
    where: Mapping = field(default_factory=dict)
    label: str = ""


#: notebook -> its headline measure; a notebook without one is summarised by its checks only
HEADLINES = {
    "00_quickstart": Headline("alignment_by_roi_layer", "r", "layer", {"roi": "language"},
                              "held-out r, language ROI (mean of subjects)"),
}


def sweep_report(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gather the cells of a sweep folder into one table, and the headline measure of each cell.

    Parameters
    ----------
    folder : path
        A sweep's folder (:func:`sweep_folder`).

    Returns
    -------
    cells : DataFrame
        One row per cell: ``cell``, ``status``, the parameters that vary across
        the cells, ``seconds``, ``checks`` (passed / total), ``failed_checks``
        (their claims), ``headline`` (the peak of the headline measure) and
        ``error``.
    headline : DataFrame
        Long table of the headline measure: ``cell``, the varying parameters,
        the ``x`` column and ``value`` (empty when the notebook has none).
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no sweep at {folder}")
    records = []
    for path in sorted(folder.glob(f"*/{CELL_FILE}")):
        if not path.parent.name.startswith("."):
            records.append(json.loads(path.read_text()))
    if not records:
        raise FileNotFoundError(f"the sweep at {folder} has no finished cell yet")
    names = sorted({k for r in records for k in r["overrides"]})
    varying = [n for n in names if len({json.dumps(r["params"].get(n), default=str) for r in records}) > 1]
    rows, curves = [], []
    for r in records:
        row = {"cell": r["id"], "status": r["status"], **{n: r["params"].get(n) for n in varying},
               "seconds": r.get("seconds"), "checks": "", "failed_checks": "", "headline": None,
               "error": (r.get("error") or "").strip().splitlines()[-1][:200] if r.get("error") else ""}
        results = folder / r["id"] / f"{r['notebook']}.json"
        if r["status"] == "done" and results.exists():
            res = json.loads(results.read_text())
            evaluated = [c for c in res.get("checks", []) if c.get("passed") is not None]
            row["checks"] = f"{sum(c['passed'] for c in evaluated)}/{len(evaluated)}"
            row["failed_checks"] = "; ".join(c["claim"] for c in evaluated if not c["passed"])
            spec = HEADLINES.get(r["notebook"])
            if spec is not None and spec.table in res.get("tables", {}):
                table = pd.DataFrame(res["tables"][spec.table])
                for col, value in spec.where.items():
                    table = table[table[col] == value]
                curve = table.groupby(spec.x)[spec.value].mean()
                if len(curve):
                    row["headline"] = round(float(curve.max()), 4)
                for x, value in curve.items():
                    curves.append({"cell": r["id"], **{n: r["params"].get(n) for n in varying}, spec.x: x,
                                   "value": float(value)})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(curves)


def write_report(folder: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write ``report.md`` (the cells' table) and ``headline.png`` (the headline across the grid) into ``folder``.

    Returns
    -------
    table, figure : Path
        The two files; ``figure`` is None when the notebook has no headline
        measure or no cell finished.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    cells, curves = sweep_report(folder)
    manifest = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {}
    notebook = manifest.get("notebook", "")
    done = int((cells.status == "done").sum())
    text = "\n".join([
        f"# Sweep {folder.name}", "",
        f"Notebook `{notebook}`, set `{manifest.get('set', '')}`, grid `{json.dumps(manifest.get('grid', {}))}`: "
        f"{done} of {len(cells)} cells done.", "",
        cells.fillna("").to_markdown(index=False), "",
    ])
    table = atomic_write(folder / "report.md", lambda tmp: tmp.write_text(text))
    if curves.empty:
        return table, None
    spec = HEADLINES[notebook]
    labels = [c for c in curves.columns if c not in ("cell", spec.x, "value")]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for cell_id, group in curves.groupby("cell", sort=False):
        first = group.iloc[0]
        label = ", ".join(f"{n}={first[n]}" for n in labels) or cell_id
        ax.plot(group[spec.x], group["value"], marker="o", label=label)
    ax.set(xlabel=spec.x, ylabel=spec.label or spec.value, title=f"{notebook}: sweep {folder.name}")
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    figure = atomic_write(folder / "headline.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return table, figure
