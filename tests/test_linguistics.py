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
