"""The versioned split manifests of the datasets: train and test runs, subjects, held-out subjects.

One JSON file per dataset in ``resources/manifests/<name>.json`` (``lebel2023``, ``narratives``,
``neuromod``, ``simulated``, ``simulated-movie``). The loaders of ``brainalign.datasets`` read the split
of a real dataset here, and the generators of ``brainalign.simulate`` the subjects, runs and repeats of
the cohort they write; both import this module, neither imports the other. (The manifests of the files
that ``brainalign.fetch`` downloads are another kind, in ``resources/manifests/files/``.)
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MANIFESTS", "read_manifest"]

#: the folder of the split manifests, one ``<dataset>.json`` each
MANIFESTS = Path(__file__).resolve().parent / "resources" / "manifests"


def read_manifest(name: str) -> dict:
    """The versioned split manifest of a dataset (train / test runs, held-out subjects)."""
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        valid = sorted(p.stem for p in MANIFESTS.glob("*.json"))
        raise ValueError(f"no split manifest for dataset {name!r}; manifests exist for {valid}")
    return json.loads(path.read_text())
