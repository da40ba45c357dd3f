from brainalign.linguistics import PROPERTIES, annotate_words


def test_sentence_properties_of_known_sentences():
    text = ("The whales were swimming. A sailor sees the ships. "
            "The old captain who had lost his leg to the whale that he hunted for years finally spoke.")
    table = annotate_words(text.split())
    assert list(table.columns) == ["word", "sentence", *PROPERTIES, "np_vp"]
    first, second, third = (table[table.sentence == k].iloc[0] for k in range(3))
    assert (first.sentence_length, second.sentence_length) == (4, 5)
    assert first.tense == "PAST" and second.tense == "PRES"
    assert first.subject_number == "NNS" and second.subject_number == "NN"
    assert second.object_number == "NNS" and first.object_number == "NONE"
    assert third.tree_depth > second.tree_depth  # the relative clauses nest deeper
    assert first.top_constituents.startswith("NP")
    # sentence-level labels are broadcast to every word of the sentence
    assert table.groupby("sentence")["tree_depth"].nunique().eq(1).all()


def test_the_studys_np_vp_class_from_the_dependency_tree():
    # constituency top levels, by hand: S -> NP VP for the first, third and fourth (the object, the auxiliary,
    # the negation and a coordinated verb phrase sit inside the VP); ADVP NP VP, S CC S and SBAR , NP VP otherwise
    sentences = ["The old man saw the whale.", "Then he ran.", "He did not go.", "He ran and jumped.",
                 "He ran and she jumped.", "When it rained, we left."]
    table = annotate_words(" ".join(sentences).split())
    assert table.groupby("sentence")["np_vp"].first().tolist() == [True, False, True, True, False, False]


def test_tree_labels_of_hand_parsed_constituency_trees():
    from nltk import Tree

    from brainalign.linguistics import _tree_labels

    # sentences of the study's story, with the depth its own per-sentence file gives them (21styear_treedepth.txt)
    shrugs = Tree.fromstring("(TOP (S (NP (PRP He)) (VP (VBZ shrugs)) (. .)))")
    assert _tree_labels(shrugs) == {"tree_depth": 4, "top_constituents": "NP_VP", "np_vp": True}  # S VP VBZ word
    la = Tree.fromstring("(S (NP (DT This)) (VP (VBZ is) (NP (NNP Los) (NNP Angeles))) (. .))")
    assert _tree_labels(la) == {"tree_depth": 5, "top_constituents": "NP_VP", "np_vp": True}
    chili = Tree.fromstring("(TOP (NP (JJ Crusted) (NN chili) (. .)))")
    assert _tree_labels(chili) == {"tree_depth": 3, "top_constituents": "JJ_NN", "np_vp": False}
    then = Tree.fromstring("(S (ADVP (RB Then)) (, ,) (NP (PRP he)) (VP (VBD ran) (SBAR (IN as) (S (NP (PRP it)) "
                           "(VP (VBD rained))))) (. .))")
    assert _tree_labels(then) == {"tree_depth": 7, "top_constituents": "ADVP_NP_VP", "np_vp": False}  # S VP SBAR S VP VBD word


def test_the_constituency_parse_gives_tree_depth_and_top_constituents(tmp_path):
    import shutil

    import pytest
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    from brainalign.linguistics import _tree_labels, load_constituency_parser
    from brainalign.miniature import write_parser

    with pytest.raises(FileNotFoundError, match=r"benepar_en3.*brainalign data fetch narratives"):
        load_constituency_parser(tmp_path / "parsers" / "benepar_en3")
    (tmp_path / "parsers").mkdir()
    (tmp_path / "parsers" / "benepar_en3.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        load_constituency_parser(tmp_path / "parsers" / "benepar_en3")
    assert [f.name for f in (tmp_path / "parsers").iterdir()] == ["benepar_en3.zip"]  # nothing half-unpacked
    # the release archive (here a tiny random model in the release layout): a folder named after the model
    write_parser(tmp_path / "parsers")
    shutil.rmtree(tmp_path / "parsers" / "benepar_en3")
    had = hasattr(PreTrainedTokenizerBase, "build_inputs_with_special_tokens")  # transformers 5 removed it
    parser = load_constituency_parser(tmp_path / "parsers" / "benepar_en3")
    assert (tmp_path / "parsers" / "benepar_en3" / "benepar_model.bin").is_file()
    assert hasattr(PreTrainedTokenizerBase, "build_inputs_with_special_tokens") == had  # the loader leaves no trace
    retokenizer = parser._parser.retokenizer  # T5 as benepar_en3: the sentence's end token after the words
    ids = retokenizer(["He", "ran", "."], [True, False, False])["input_ids"]
    assert retokenizer.is_t5 and ids[-1] == retokenizer.tokenizer.eos_token_id
    text = "The whales were swimming. A sailor sees the ships near the old harbour. He ran."
    table = annotate_words(text.split(), constituency=parser)
    by_sentence = table.groupby("sentence").first()
    trees = list(parser.parse_sents([["The", "whales", "were", "swimming", "."],
                                     ["A", "sailor", "sees", "the", "ships", "near", "the", "old", "harbour", "."],
                                     ["He", "ran", "."]]))
    assert all(t.label() == "TOP" for t in trees)  # benepar's wrapper, not counted in the depth
    assert by_sentence["tree_depth"].tolist() == [_tree_labels(t)["tree_depth"] for t in trees]
    assert by_sentence["top_constituents"].tolist() == [_tree_labels(t)["top_constituents"] for t in trees]
    assert (by_sentence["np_vp"] == (by_sentence["top_constituents"] == "NP_VP")).all()
    assert table["tree_depth"].dtype.kind == "i" and table["np_vp"].dtype == bool
    # tense and number still come from spaCy
    assert by_sentence["tense"].tolist() == annotate_words(text.split()).groupby("sentence")["tense"].first().tolist()
