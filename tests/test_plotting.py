import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brainalign import plotting  # noqa: E402
from brainalign.spaces import fslr  # noqa: E402


def test_to_surface_fills_from_nearest_sampled_vertex():
    hcp = fslr()
    vertices = np.arange(0, hcp.struct.cortex_right.stop, 15)
    values = (vertices >= hcp.struct.cortex_left.stop).astype(float)  # 0 left, 1 right
    surf = plotting.to_surface(values, vertices)
    assert surf["left"].shape == surf["right"].shape == (32492,)
    assert np.nanmax(surf["left"]) == 0 and np.nanmin(surf["right"]) == 1  # no bleed across hemispheres
    assert np.isnan(surf["left"]).sum() > 0  # the medial wall is not cortex
    with pytest.raises(ValueError, match="one per voxel"):
        plotting.to_surface(values[:-1], vertices)


def test_figures_say_when_data_are_simulated():
    table = pd.DataFrame({"layer": [0, 1, 0, 1], "score": [0.1, 0.2, 0.0, 0.05], "roi": ["a", "a", "b", "b"]})
    ax = plotting.layer_curves(table, simulated=True)
    assert any(t.get_text() == "SIMULATED DATA" for t in ax.figure.texts)
    ax = plotting.roi_bars(table, x="roi", simulated=False)
    assert not any(t.get_text() == "SIMULATED DATA" for t in ax.figure.texts)
