"""The registry of dataset names (``DATASETS``) and ``load_dataset``, which resolves a name once."""

from __future__ import annotations

from .base import Dataset
from .lebel2023 import load_lebel2023
from .narratives import load_narratives
from .neuromod import load_neuromod
from .simulated import load_simulated, load_simulated_movie

__all__ = ["DATASETS", "load_dataset"]

#: dataset name -> its loader (``load_dataset(name, **kwargs)`` calls ``DATASETS[name](**kwargs)``)
DATASETS = {"simulated": load_simulated, "simulated-movie": load_simulated_movie, "lebel2023": load_lebel2023,
            "narratives": load_narratives, "neuromod": load_neuromod}


def load_dataset(name: str = "simulated", **kwargs) -> Dataset:
    """Load a dataset by name (``simulated`` is the embedded default).

    Parameters
    ----------
    name : str
        One of ``DATASETS``.
    **kwargs
        Passed to the loader: ``seed`` (and ``root``) for ``simulated`` and ``simulated-movie``; ``root`` (default: a
        folder of the data home) for the real ones; ``tr`` for ``lebel2023``;
        ``runs``, ``subjects``, ``pipeline`` for ``narratives``; ``task``
        ("friends" or "movie10") and ``labels`` for ``neuromod``. Every loader
        takes ``sample_at`` (a key of ``stimuli.SAMPLE_AT``), which overrides
        where the dataset's features are sampled (``Dataset.sample_times``).
    """
    from ..stimuli import SAMPLE_AT

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {sorted(DATASETS)}")
    sample_at = kwargs.pop("sample_at", None)
    if sample_at is not None and sample_at not in SAMPLE_AT:
        raise ValueError(f"unknown sample_at {sample_at!r}; valid: {sorted(SAMPLE_AT)}")
    ds = DATASETS[name](**kwargs)
    if sample_at is not None:
        ds.sample_at = sample_at
    return ds
