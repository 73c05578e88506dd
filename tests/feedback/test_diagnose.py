"""`askloop eval --diagnose`: the headroom figures, and which rule blocked a memory."""

from __future__ import annotations

import numpy as np
import pytest

from bot.services import eval_world_opener
from feedback.datasets import load_dataset
from feedback.diagnose import _blocked_by
from feedback.evaluation import EvalOptions, Evaluation
from retrieval.learned import LearnedTuning, MemoryParams
from tests.feedback.test_evaluation import write_dataset


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


E1, E2, E3, E4 = (unit(*row) for row in np.eye(4))
TEST = unit(1, 0.3, 0, 0)  # raw cosine 0.958 with E1


def tuning(questions: list[np.ndarray], docs: list[str], weights: list[float], *, votes: list[bool] | None = None,
           titles: dict[str, np.ndarray] | None = None, params: MemoryParams | None = None) -> LearnedTuning:
    titles = titles or {"a": E3, "b": E4}
    return LearnedTuning(
        version=1, params=params or MemoryParams(), questions=np.stack(questions),
        memory_question=np.arange(len(questions)), memory_doc=docs, memory_weight=np.asarray(weights, np.float32),
        memory_is_vote=np.asarray(votes or [False] * len(questions)), title_docs=list(titles),
        title_vectors=np.stack(list(titles.values())), title_texts=list(titles),
    )


def test_a_memory_that_counts_is_not_blocked() -> None:
    assert _blocked_by(tuning([E1], ["a"], [3.0]), TEST, {"a"}) is None


def test_the_title_rule_is_named_when_another_title_describes_the_question_better() -> None:
    # Another document's title is the question itself: the correction on E1 → a is within reach but does not count.
    blocked = tuning([E1], ["a"], [3.0], titles={"a": E3, "b": TEST})
    assert _blocked_by(blocked, TEST, {"a"}) == "title_margin"
    # With the rule turned off (title_margin 2) the same memory counts.
    off = tuning([E1], ["a"], [3.0], titles={"a": E3, "b": TEST}, params=MemoryParams(title_margin=2.0))
    assert _blocked_by(off, TEST, {"a"}) is None


def test_a_counted_thumbs_down_on_the_right_document_is_named() -> None:
    assert _blocked_by(tuning([E1], ["a"], [-1.0]), TEST, {"a"}) == "tau_negative"


def test_a_pin_for_another_document_is_named() -> None:
    # A correction made on the very question, citing b, is served first; a is right.
    assert _blocked_by(tuning([TEST, E1], ["b", "a"], [3.0, 1.0], votes=[False, True]), TEST, {"a"}) == "pin_similarity"


def test_the_nearest_validated_question_beyond_reach_names_its_tau() -> None:
    far = unit(0.4, 0, 1, 0)  # cosine ~0.36 with TEST: below every τ, yet the nearest validated question
    assert _blocked_by(tuning([far, E4], ["a", "b"], [3.0, 3.0]), TEST, {"a"}) == "tau"
    assert _blocked_by(tuning([far, E4], ["a", "b"], [1.0, 1.0], votes=[True, True]), TEST, {"a"}) == "tau_vote"
    # Not the nearest one: nothing to say (the nearest-feedback rule would not have been right either).
    assert _blocked_by(tuning([far, unit(1, 0.2, 0, 0)], ["a", "b"], [3.0, 3.0]), TEST, {"a"}) != "tau"


@pytest.fixture()
def evaluation(tmp_path, settings, embedder) -> Evaluation:
    ds = load_dataset(write_dataset(tmp_path / "tiny-beir"))
    world = eval_world_opener(settings)(ds, tmp_path / "world")
    return Evaluation(ds, EvalOptions(simulate=True, strategies=["none", "askloop"], diagnose=True), world)


def test_diagnosis_of_a_run(evaluation: Evaluation) -> None:
    result = evaluation.run()
    diagnosis = result["diagnosis"]
    assert diagnosis["strategy"] == "askloop" and diagnosis["validated_feedback_questions"] == 4
    parts = diagnosis["parts"]
    assert parts["with_feedback"]["n"] == 4 and parts["without_feedback"]["n"] == 1 and parts["all"]["n"] == 5
    for part in parts.values():
        hit = part["hit@1"]
        assert hit["ceiling"] >= max(hit["nearest_feedback"], hit["search"]) - 1e-9
        assert hit["ceiling"] <= hit["nearest_feedback"] + hit["search"] + 1e-9
        misses = part["misses"]
        assert misses["total"] == round(part["n"] * (1 - hit["askloop"]))
        assert misses["total"] == sum(misses["blocked"].values()) + misses["out_of_reach"] + misses["ranked_second"] + misses["other"]
    # The figures agree with the run's own: plain search is the baseline, the engine is askloop's "after".
    assert parts["all"]["hit@1"]["search"] == pytest.approx(result["strategies"]["none"]["after"]["hit@1"], abs=1e-4)
    assert parts["all"]["hit@1"]["askloop"] == pytest.approx(result["strategies"]["askloop"]["after"]["hit@1"], abs=1e-4)
    # Clean feedback on paraphrases: the nearest feedback question's document is the right one.
    assert parts["with_feedback"]["hit@1"]["nearest_feedback"] == 1.0
    assert parts["without_feedback"]["hit@1"]["nearest_feedback"] == 0.0  # its need got no feedback


def test_diagnose_needs_the_askloop_strategy() -> None:
    with pytest.raises(ValueError, match="--diagnose"):
        EvalOptions(simulate=True, strategies=["none"], diagnose=True).check()
    with pytest.raises(ValueError, match="--diagnose"):
        EvalOptions(simulate=False, diagnose=True).check()


def test_the_limits_loosened_are_measured_against_the_engine(evaluation: Evaluation) -> None:
    diagnosis = evaluation.run()["diagnosis"]
    labels = [v["variant"] for v in diagnosis["looser"]]
    assert labels == ["title rule off", "reach of 👍 and corrections −0.15", "tuned encoder for every question", "all three"]
    engine = diagnosis["parts"]
    for variant in diagnosis["looser"]:
        for part, figures in variant["parts"].items():
            n = figures["n"]
            assert n == engine[part]["n"]
            # its hit@1 is the engine's, plus what it gained, less what it lost
            moved = (figures["gained"] - figures["lost"]) / n if n else 0.0
            assert figures["hit@1"] == pytest.approx(engine[part]["hit@1"]["askloop"] + moved, abs=1e-3)


def test_loosening_a_limit_changes_what_it_governs() -> None:
    # A memory the title rule blocks counts once the rule is off; the encoder's reach follows its own setting.
    blocked = tuning([E1], ["a"], [3.0], titles={"a": E3, "b": TEST})
    loose = blocked.with_params(MemoryParams(title_margin=2.0))
    assert blocked.adjustments(TEST) == {} and loose.adjustments(TEST).get("a", 0) > 0
    far = blocked.with_encoder_reach(0.99)
    assert far.encoder_reach == 0.99 and far.encoder_title_margin == blocked.encoder_title_margin
    assert blocked.with_encoder_reach(0.0, 2.0).encoder_title_margin == 2.0
