"""The code shown in the book's pages runs as written."""

import re
from pathlib import Path

import numpy as np

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_library_page_example_runs(cohort):
    code = re.search(r"```python\n(.*?)```", (BOOK / "library.md").read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "library.md", "exec"), namespace)
    r = namespace["r"]
    assert r.shape == (namespace["ds"].responses("S01", "chapel").shape[1],)
    assert np.isfinite(r).all() and r[namespace["ds"].rois()["auditory"]].mean() > 0.2
