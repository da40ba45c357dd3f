"""Which input words drive brain alignment, and which drive next-word prediction.

The method of Proietti, Capobianco & Toneva (2025). A causal language model
reads a window of ``context`` words; its hidden states at one layer, averaged
over each word's tokens, are resampled to the fMRI TRs (the Lanczos filter of
:func:`brainalign.features.tr_features`), delayed and fed to a fitted ridge
encoding model (:class:`brainalign.encoding.RidgeEncoder`, turned into a torch
map with :meth:`~brainalign.encoding.RidgeEncoder.linear_map`). Two losses are
attributed to the input embeddings of the window's words:

* **brain alignment** (BA): the mean squared error, over the voxels of a
  region, between the ridge prediction of one TR and the measured response;
* **next-word prediction** (NWP): the mean cross-entropy over the tokens of
  the word that follows the window (teacher forcing), read out at the same
  layer through the final norm and the output embeddings (the "logit lens";
  ``nwp_readout="output"`` reads the model's own output instead).

The attribution of a token is Gradient x Input (the gradient of the loss with
respect to the token's input embedding, dotted with the embedding), or
Integrated Gradients from a zero-embedding baseline (captum); a word's score
is the sum over its tokens. The window ends at the last word that the
prediction of the TR reads (the Lanczos support of its delayed TRs), so the
last word of the window is the "current word" of both losses.

The analyses work on any word attribution vector: the smallest set of words
whose absolute attribution reaches ``t`` % of the total (:func:`important_set`),
overlap of two such sets (:func:`iou`) against the overlap of random sets of
the same sizes (:func:`random_iou`), spread (:func:`spread_auc`), centre of
mass over positions (:func:`centre_of_mass`) and the profile over the distance
from the current word (:func:`distance_profile`). :func:`hrf_word_weights`
gives the weight of every word in the response of every TR under a linear
model of word-locked sources convolved with the canonical HRF, the model of
the simulated cohort.

References
----------
Proietti, M., Capobianco, R., & Toneva, M. (2025). Fine-grained analysis of
brain-LLM alignment through input attribution. arXiv:2510.12355.

Modules
-------
Every public name can be imported from ``brainalign.attribution`` itself.

``measures``
    The analyses of word attribution vectors (important sets, overlap, spread,
    profiles, weighted and planted shares, word classes, masks) on plain arrays; no torch.
``gradients``
    The attribution methods on torch tensors: Gradient x Input, Integrated Gradients.
``forward``
    The causal language model run from input embeddings: hidden states up to a
    layer (later blocks skipped), next-token logits of a layer.
``pipeline``
    The ridge encoder as a torch map (:class:`RidgeMap`) and
    :class:`BrainAttribution`, which attributes both losses to a story's words.
"""

from .gradients import METHODS, gradient_x_input, integrated_gradients
from .measures import (
    CONTENT_POS,
    THRESHOLDS,
    centre_of_mass,
    distance_profile,
    gather_windows,
    hrf_word_weights,
    important_set,
    iou,
    iou_curve,
    layer_group,
    most_negative,
    planted_share,
    random_iou,
    random_iou_curve,
    set_sizes,
    spread_auc,
    weighted_share,
    word_classes,
)
from .pipeline import BASELINES, NWP_READOUTS, BrainAttribution, RidgeMap, WordAttributions

__all__ = [
    "BASELINES", "BrainAttribution", "CONTENT_POS", "METHODS", "NWP_READOUTS", "RidgeMap", "THRESHOLDS", "WordAttributions",
    "centre_of_mass", "distance_profile", "gather_windows", "gradient_x_input", "hrf_word_weights",
    "important_set", "integrated_gradients", "iou", "iou_curve", "layer_group", "most_negative", "planted_share", "random_iou",
    "random_iou_curve", "set_sizes", "spread_auc", "weighted_share", "word_classes",
]
