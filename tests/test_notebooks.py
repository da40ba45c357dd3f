"""Every notebook of notebooks/runs.yml, executed in its smoke set within Binder's memory; bad parameters stop it at once."""

import json

import papermill as pm
import pytest

from brainalign.launch import BINDER_MEMORY_MB
from brainalign.results import declared, failed_validations
from brainalign.runner import load_runs, run_notebook

RUNS = load_runs()
#: validations known to fail on the simulated cohort, each a bug still to fix, with what was found; a smoke run in
#: which one of them fails is reported as an expected failure, after every other assertion has held
KNOWN_FAILING = {
    "05_input_attribution": {
        # the alignment attributions of LTC favour its planted words no more than a noise-only region's encoder and a
        # shuffled-response encoder do (0.227 against 0.216 and 0.231 on the default set of cohort v5). The loss is in
        # Gradient x Input at the input embeddings: the LTC encoder's own word contributions and the same loss's
        # Gradient x Input at the layer's features do favour them (05's section 4 table, p < 0.005 for both), and
        # Integrated Gradients at the input did on 24 TRs of a separate run (p = 0.017 and 0.013). Gradient x Input's
        # first-order premise fails at this model's input: its estimates do not rank what replacing one word does
        # (bench/bench_attribution.py)
        "alignment_attribution_finds_planted_words",
        # with the first token held, the next-word loss's path is smoother but not always smooth enough: the default
        # set's check passes (median gap over its 2 TRs 0.7% with 80 points), the smoke set's one TR does not (19% with
        # 128 points, the most it allows; the gap rose from 9% at 64); one of three windows measured also stayed at 44%
        "integrated_gradients_complete",
    },
}
#: the declared items (brainalign/resources/claims.yml) each smoke set cannot evaluate (too small, or no data for it);
#: it marks them so itself
NOT_IN_SMOKE = {
    "00_quickstart": set(),
    # ridge only; 3 layers, 2 properties; the study released labels of its own story only
    "01_property_removal": {"inlp_removes_most", "syntax_drives_layer_trend", "labeller_agrees_with_study"},
    # small models barely trained; 3 participants, too few for the controls' Wilcoxon test to reach p < 0.05
    "02_control_analyses": {"small_models_need_language", "positions_matter_small", "trained_models_align",
                            "noise_rois_not_aligned"},
    # a quarter of an epoch: too little tuning to test what it learns (the notebook's MIN_PASSES)
    "03_multimodal_brain_tuning": {"tuning_beats_the_mean", "gain_where_planted", "selfsup_control_does_not_explain_gain"},
    "04_multiparticipant_brain_tuning": {"multi_beats_single", "transfers_to_second_cohort"},  # no single, no 2nd cohort
    "05_input_attribution": set(),
    "06_instruction_tuned_models": {"similar_instructions_share_variance"},  # one instruction pair, not two
}


@pytest.mark.parametrize("study", sorted(RUNS))
def test_notebook_smoke(study, tmp_path):
    path = run_notebook(study, "smoke", out_dir=tmp_path, progress=False)
    assert path.exists()
    result = json.loads((tmp_path / f"{study}.json").read_text())
    assert result["simulated"] is True
    # every declared item is evaluated, or marked by the notebook as not evaluated in this set, with the reason
    assert result["missing"] == [], result["missing"]
    assert {c["id"] for c in result["checks"]} == {i["id"] for i in declared(study)}
    skipped = {c["id"] for c in result["checks"] if c["verdict"] == "not evaluated"}
    assert skipped == NOT_IN_SMOKE[study], skipped
    assert all(c["why"] for c in result["checks"] if c["passed"] is None)
    # validations (the method on planted truth) must pass; the paper's claims are results with a verdict either way
    known = KNOWN_FAILING.get(study, set())
    failing = {c["id"] for c in result["checks"] if c["kind"] == "validation" and c["passed"] is False}
    assert failing <= known, failed_validations(c for c in result["checks"] if c["id"] not in known)
    # Binder gives a session 2 GB: the kernel's peak resident memory (recorded by the notebook) stays below it
    peak = result["peak_memory_mb"]
    assert peak < BINDER_MEMORY_MB, f"{study} smoke peaked at {peak:.0f} MB, above Binder's {BINDER_MEMORY_MB} MB"
    if failing:
        pytest.xfail(f"{study}: known failing validations {sorted(failing)} (KNOWN_FAILING)")


def test_unknown_parameter_name_fails_before_running(tmp_path):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['layr'\].*valid parameters"):
        run_notebook("00_quickstart", "smoke", {"layr": 3}, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_unknown_values_stop_the_first_cells(tmp_path):
    for name, value, message in [("model", "gpt-5", "unknown model 'gpt-5'"),
                                 ("dataset", "nope", "unknown dataset 'nope'"),
                                 ("layers", [0, 99], "unknown layer 99"),
                                 ("model", "bert-base-uncased", "needs the Hugging Face hub"),
                                 ("delays", [-1], r"delays=-1 is out of range"),
                                 ("layers", [], r"no layer given"),
                                 ("subjects", [], r"no subject given"),
                                 ("n_folds", 1, r"n_folds=1 is out of range")]:
        with pytest.raises(pm.PapermillExecutionError, match=message):
            run_notebook("00_quickstart", "smoke", {name: value}, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "00_quickstart.ipynb").exists()


def test_study6_names_what_is_valid(tmp_path):
    """An unknown instruction, task group, model or state stops Study 6's first cells, naming the valid ones."""
    for name, value, message in [("video_tasks", ["Dancing"], r"unknown task\(s\) \['Dancing'\]; valid tasks: Action Recognition"),
                                 ("audio_tasks", "Musical taste", r"unknown task set 'Musical taste'; valid: 'video', 'audio'"),
                                 ("it_model", "gpt-5", "unknown it_model 'gpt-5'"),
                                 ("pairs", [["Action Recognition", "Speaker Identification"]],
                                  r"unknown instruction pair 'Speaker Identification'"),
                                 ("it_layers", [31], "unknown it_layers 31")]:
        with pytest.raises(pm.PapermillExecutionError, match=message):
            run_notebook("06_instruction_tuned_models", "smoke", {name: value}, out_dir=tmp_path, progress=False)


def test_studies_on_movies_refuse_a_dataset_without_video(tmp_path):
    for study in ("03_multimodal_brain_tuning", "06_instruction_tuned_models"):
        with pytest.raises(pm.PapermillExecutionError, match="dataset='simulated' has no audio and video that brainalign reads"):
            run_notebook(study, "smoke", {"dataset": "simulated"}, out_dir=tmp_path, progress=False)


def test_unknown_set_and_study():
    with pytest.raises(ValueError, match="unknown parameter set 'fast'"):
        run_notebook("00_quickstart", "fast")
    with pytest.raises(ValueError, match="unknown study '99_nope'"):
        run_notebook("99_nope")
    with pytest.raises(ValueError, match="a miniature run stands in for real datasets, but this set names none"):
        run_notebook("00_quickstart", "smoke", miniature=True)
    with pytest.raises(ValueError, match="but this set names {'transfer_dataset': 'simulated-movie'}"):
        run_notebook("04_multiparticipant_brain_tuning", "paper", {"transfer_dataset": "simulated-movie"}, miniature=True)


#: parameters a miniature run changes, and why: only what it costs, so that it still reaches every step
MINIATURE_OVERRIDES = {
    # 2 outer folds and 2 penalties instead of 4 and 10, 100 bootstrap draws instead of 1000
    "01_property_removal": {"outer_folds": 2, "alphas": [10.0, 1000.0], "n_bootstraps": 100},
    # 20 training steps of each small model instead of 300 (more than half of the run), 100 RSA permutations
    "02_control_analyses": {"small_steps": 20, "n_permutations": 100},
    # 2 epochs instead of up to 30, the last state of each encoder and the fusion states instead of all 25, the smoke
    # set's 12 downstream clips instead of 29 and fewer resamples: the same steps, in minutes instead of half an hour
    "03_multimodal_brain_tuning": {"max_epochs": 2, "layers": [4, 21, 22, 23, 24], "probe_clips": 12, "probe_folds": 3,
                                   "n_boot": 50, "n_permutations": 50},
    # 2 TRs instead of 10 in the Integrated Gradients check: on a random tiny model it doubles its path points to the
    # cap (160) without converging, 4 minutes for 10 TRs
    "05_input_attribution": {"check_trs": 2},
    # 2 epochs on every 10th TR, one single-participant model per speech model instead of three, and 4-s evaluation
    # windows ending every 2 s instead of 16-s windows every 0.1 s: the same steps, from about 30 minutes to 1. And
    # 4-s tuning windows instead of 10-s ones: on the CPU, a 10-s window's attention over its 500 frames, kept for the
    # backward pass, took the run to 2.15 GB, above Binder's 2 GB (0.95 GB with 4 s)
    "04_multiparticipant_brain_tuning": {"max_epochs": 2, "train_fraction": 0.1, "single_subjects": ["UTS01"],
                                         "eval_window": 4.0, "eval_stride": 2.0, "window": 4.0},
    # the four video instructions of the variance-partitioning pairs and two audio ones instead of all 18, answers of 2
    # tokens instead of 16 and 4 frames a window instead of 16: each volume's answer is generated once per instruction,
    # which took 6 of the 7 minutes of the whole set
    "06_instruction_tuned_models": {"video_tasks": ["Action Recognition", "Video Understanding", "Narrative Understanding",
                                                    "Linking Events"], "audio_tasks": ["Audio Captioning", "Speaker Identification"],
                                    "max_new_tokens": 2, "it_frames": 4},
}


@pytest.mark.parametrize("study", sorted(s for s in RUNS if "paper" in RUNS[s]))
def test_paper_set_runs_end_to_end_on_miniatures(study, tmp_path):
    """The `paper` set on real-format miniatures of its datasets and tiny random stand-ins of its models, on the CPU:
    every step of a real run runs, and every declared claim is computed (the numbers mean nothing)."""
    run_notebook(study, "paper", MINIATURE_OVERRIDES.get(study), out_dir=tmp_path, progress=False, miniature=True)
    result = json.loads((tmp_path / f"{study}.json").read_text())
    assert result["miniature"] is True and result["simulated"] is False
    assert result["parameters"]["dataset"] == RUNS[study]["paper"]["dataset"]
    assert result["missing"] == [], result["missing"]
    assert {c["id"] for c in result["checks"]} == {i["id"] for i in declared(study)}
    assert all(c.get("why") != "not reached in this run" for c in result["checks"])
    # a claim is left out only where the notebook says why (e.g. it needs the simulated cohort's planted regions)
    assert all(c.get("why") for c in result["checks"] if c["kind"] == "claim" and c["verdict"] == "not evaluated")
    assert result["peak_memory_mb"] < BINDER_MEMORY_MB


@pytest.mark.parametrize("study", sorted(s for s in RUNS if "paper" in RUNS[s]))
def test_paper_sets_stop_offline_with_what_to_do(study, tmp_path, monkeypatch):
    """A `paper` set needs the hub and the real data: offline it stops at once and says so, never falls back."""
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    with pytest.raises(pm.PapermillExecutionError, match=r"needs the Hugging Face hub|brainalign data fetch|is not at"):
        run_notebook(study, "paper", out_dir=tmp_path, progress=False)
    assert not (tmp_path / f"{study}.json").exists()


def test_study_labels_need_the_studys_classes_and_its_data(tmp_path):
    """Study 1 reads the study's released labels only in the study's classes, and only where the dataset has them."""
    with pytest.raises(pm.PapermillExecutionError, match="labeller='study'.*use classes='study', not 'quantiles'"):
        run_notebook("01_property_removal", "smoke", {"labeller": "study"}, out_dir=tmp_path, progress=False)
    with pytest.raises(pm.PapermillExecutionError, match=r"not on disk for \[.*of dataset 'simulated'.*data fetch narratives"):
        run_notebook("01_property_removal", "smoke", {"labeller": "study", "classes": "study"}, out_dir=tmp_path,
                     progress=False)
    assert not (tmp_path / "01_property_removal.json").exists()


@pytest.mark.parametrize("study, parameter", [("00_quickstart", "model"), ("01_property_removal", "model"),
                                              ("02_control_analyses", "causal_model"), ("05_input_attribution", "model")])
def test_the_cohorts_generator_model_is_refused(study, parameter, tmp_path):
    """The model that generated the simulated cohort's semantic sources is never evaluated on it."""
    from brainalign.simulate import GENERATOR

    with pytest.raises(pm.PapermillExecutionError, match=rf"{GENERATOR}.*generated the simulated cohort"):
        run_notebook(study, "smoke", {parameter: GENERATOR}, out_dir=tmp_path, progress=False)
    assert not (tmp_path / f"{study}.json").exists()
