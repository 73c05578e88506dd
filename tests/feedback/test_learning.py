"""Every learning rule, on plain data: each test fails when its rule breaks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from feedback.learning import LearningEngine, LearningParams, collect_memories
from retrieval.learned import (
    DocBoostTuning,
    decode_matrix,
    encode_matrix as _encode,
    LearnedTuning,
    MemoryParams,
    PayloadError,
    kernel,
)
from retrieval.tuning_payload import tuning_from_payload
from retrieval.tuning import NoTuning
from tests.support.learning import CountingEncoder, TableEncoder, correction, feedback, hits, unit, vote

PASSWORD = "how do I reset my password"
PASSWORD_AGAIN = "I forgot my password, how to change it"
LUNCH = "where is the canteen"

VECTORS = {
    PASSWORD: unit(1, 0, 0),
    PASSWORD_AGAIN: unit(1, 0.25, 0),
    LUNCH: unit(0, 0, 1),
}


def engine(**overrides: float) -> LearningEngine:
    return LearningEngine(TableEncoder(VECTORS), LearningParams(**overrides))  # type: ignore[arg-type]


def learned(fb, **overrides):  # type: ignore[no-untyped-def]
    proposal = engine(**overrides).build(fb)
    return proposal, tuning_from_payload(json.loads(json.dumps(proposal.payload)), None)


# -- the kernel ------------------------------------------------------------------------------------
def test_kernel_is_zero_below_tau_and_one_for_the_same_question() -> None:
    values = kernel(np.array([0.0, 0.45, 0.5, 0.8, 1.0]), tau=0.45, power=1.0)
    assert values[0] == 0 and values[1] == 0
    assert values[-1] == pytest.approx(1.0)
    assert np.all(np.diff(values) >= 0)


# -- query-aware reweighting -----------------------------------------------------------------------
def test_upvote_raises_its_document_for_similar_questions_only() -> None:
    _, tuning = learned(feedback([vote(1, PASSWORD, "ann", +1, "sso", "wiki")]))
    candidates = hits(wiki=0.62, sso=0.60, canteen=0.40)
    assert [h.doc_id for h in tuning.rerank(VECTORS[PASSWORD_AGAIN], candidates)][0] == "sso"
    # An unrelated question is left exactly as it was.
    unrelated = tuning.rerank(VECTORS[LUNCH], candidates)
    assert [(h.doc_id, h.score) for h in unrelated] == [("wiki", 0.62), ("sso", 0.60), ("canteen", 0.40)]


def test_downvote_lowers_the_shown_top_document_for_near_repeats() -> None:
    _, tuning = learned(feedback([vote(1, PASSWORD, "ann", -1, "wiki", "sso")]))
    ranked = tuning.rerank(VECTORS[PASSWORD], hits(wiki=0.62, sso=0.61, other=0.40))
    assert ranked[0].doc_id == "sso"
    wiki = next(h for h in ranked if h.doc_id == "wiki")
    assert wiki.score < 0.61 and wiki.reasons


def test_adjustment_is_in_units_of_the_candidates_spread() -> None:
    _, tuning = learned(feedback([vote(1, PASSWORD, "ann", +1, "sso")]))
    a = tuning.adjustments(VECTORS[PASSWORD])["sso"]
    tight = tuning.rerank(VECTORS[PASSWORD], hits(sso=0.60, a=0.61, b=0.62))
    wide = tuning.rerank(VECTORS[PASSWORD], hits(sso=0.30, a=0.60, b=0.90))
    lift_tight = next(h.score for h in tight if h.doc_id == "sso") - 0.60
    lift_wide = next(h.score for h in wide if h.doc_id == "sso") - 0.30
    assert lift_tight == pytest.approx(a * max(0.02, float(np.std([0.60, 0.61, 0.62]))), rel=1e-4)
    assert lift_wide == pytest.approx(a * float(np.std([0.30, 0.60, 0.90])), rel=1e-4)


# -- bounds -----------------------------------------------------------------------------------------
def test_many_votes_on_one_document_are_capped() -> None:
    votes = [vote(i, PASSWORD, f"user{i}", +1, "sso") for i in range(200)]
    _, tuning = learned(feedback(votes))
    assert tuning.adjustments(VECTORS[PASSWORD])["sso"] <= MemoryParams().cap + 1e-6


def test_one_users_total_influence_is_capped() -> None:
    votes = [vote(i, PASSWORD, "mallory", +1, f"doc{i}") for i in range(100)]
    memories, _, _ = collect_memories(feedback(votes), LearningParams(user_cap=10.0))
    assert sum(abs(m.weight) for m in memories) == pytest.approx(10.0)


def test_one_documents_total_weight_is_capped() -> None:
    votes = [vote(i, PASSWORD, f"u{i}", -1, "wiki") for i in range(100)]
    memories, _, _ = collect_memories(feedback(votes), LearningParams(doc_cap=20.0))
    assert sum(abs(m.weight) for m in memories if m.doc_id == "wiki") == pytest.approx(20.0)


def test_vote_weight_from_the_policy_is_respected_and_bounded() -> None:
    memories, _, _ = collect_memories(
        feedback([vote(1, PASSWORD, "a", +1, "sso", weight=0.5), vote(2, PASSWORD, "b", +1, "sso", weight=9.0)]),
        LearningParams(),
    )
    up = LearningParams().up_weight
    assert [m.weight for m in memories] == [0.5 * up, up]


def test_downvote_whose_fix_was_rejected_counts_less() -> None:
    fb = feedback([vote(7, PASSWORD, "ann", -1, "wiki")])
    normal, _, _ = collect_memories(fb, LearningParams())
    doubtful, _, skipped = collect_memories(fb, LearningParams(rejected_fix_factor=0.25), {(7, "ann")})
    assert doubtful[0].weight == pytest.approx(normal[0].weight * 0.25)
    assert skipped == {"👎 discounted: its proposed fix was rejected": 1}


def test_at_factor_zero_a_downvote_whose_fix_was_rejected_is_set_aside_and_the_proposal_says_so() -> None:
    fb = feedback([vote(7, PASSWORD, "ann", -1, "wiki"), vote(8, PASSWORD_AGAIN, "bob", -1, "wiki")])
    memories, _, skipped = collect_memories(fb, LearningParams(rejected_fix_factor=0.0), {(7, "ann")})
    assert [m.ref for m in memories] == ["a8"]
    assert skipped == {"👎 set aside: its proposed fix was rejected": 1}
    proposal = engine(rejected_fix_factor=0.0).build(fb, doubtful={(7, "ann")})
    assert "👎 set aside: its proposed fix was rejected" in proposal.summary


# -- augmentation -----------------------------------------------------------------------------------
def test_corrected_document_becomes_a_candidate_for_similar_questions() -> None:
    _, tuning = learned(feedback(corrections=[correction(3, PASSWORD, "ann", doc_id="sso")]))
    assert tuning.extra_doc_ids(VECTORS[PASSWORD_AGAIN]) == ["sso"]
    assert tuning.extra_doc_ids(VECTORS[LUNCH]) == []
    ranked = tuning.rerank(VECTORS[PASSWORD_AGAIN], hits(wiki=0.7, other=0.65, sso=0.6, x=0.4, y=0.35, z=0.3))
    assert ranked[0].doc_id == "sso"


def test_corrected_text_becomes_a_passage_with_provenance() -> None:
    text = "Reset it at https://id.example.com/reset; the link expires after 15 minutes."
    encoder = TableEncoder(VECTORS | {text: unit(1, 0.1, 0)})
    proposal = LearningEngine(encoder).build(feedback(corrections=[correction(5, PASSWORD, "ann", text=text)]))
    tuning = tuning_from_payload(proposal.payload, None)
    extra = tuning.extra_hits(VECTORS[PASSWORD_AGAIN])
    assert len(extra) == 1
    assert extra[0].title == "Correction #5" and extra[0].passage == text
    assert "correction #5" in extra[0].source and PASSWORD in extra[0].reasons[0]
    assert tuning.extra_hits(VECTORS[LUNCH]) == []
    assert proposal.diff["passages"][0]["correction"] == "c5"


def test_corrected_text_that_cites_a_document_is_shown_with_that_document() -> None:
    """Text and a source together: neither is dropped; the text replaces the document's passage
    only where the correction reaches."""
    text = "Use the self-service page; the reset link expires after 15 minutes."
    encoder = TableEncoder(VECTORS | {text: unit(1, 0.1, 0)})
    fb = feedback(corrections=[correction(6, PASSWORD, "ann", doc_id="sso", text=text)])
    proposal = LearningEngine(encoder).build(fb)
    tuning = tuning_from_payload(json.loads(json.dumps(proposal.payload)), None)
    assert tuning.extra_hits(VECTORS[PASSWORD_AGAIN]) == []  # not a document of its own
    ranked = tuning.rerank(VECTORS[PASSWORD_AGAIN], hits(wiki=0.7, sso=0.6))
    assert ranked[0].doc_id == "sso" and ranked[0].passage == text
    assert "text from correction #6" in ranked[0].reasons
    far = {h.doc_id: h for h in tuning.rerank(VECTORS[LUNCH], hits(wiki=0.7, sso=0.6))}
    assert far["sso"].passage != text
    assert "+ text from c6 shown with sso" in proposal.summary
    assert [m.doc_id for m in collect_memories(fb, LearningParams())[0]] == ["sso"]


# -- the payload ------------------------------------------------------------------------------------
def test_payload_is_json_and_decodes_to_the_same_behaviour() -> None:
    fb = feedback([vote(1, PASSWORD, "ann", +1, "sso")], [correction(2, LUNCH, "bob", doc_id="canteen")])
    proposal = engine().build(fb)
    text = json.dumps(proposal.payload)
    tuning = tuning_from_payload(json.loads(text), 4)
    assert isinstance(tuning, LearnedTuning) and tuning.version == 4
    assert tuning.adjustments(VECTORS[LUNCH]).keys() == {"canteen"}
    assert proposal.payload["id"]


def test_decoded_versions_are_memoised_by_version_and_content() -> None:
    proposal = engine().build(feedback([vote(1, PASSWORD, "ann", +1, "sso")]))
    other = engine().build(feedback([vote(1, PASSWORD, "ann", -1, "sso")]))
    first = tuning_from_payload(proposal.payload, 11)
    assert tuning_from_payload(proposal.payload, 11) is first
    assert tuning_from_payload(other.payload, 11) is not first  # another database's version 11


def test_a_malformed_payload_is_refused_clearly() -> None:
    with pytest.raises(PayloadError):
        tuning_from_payload({"kind": "telepathy"}, None)
    payload = engine().build(feedback([vote(1, PASSWORD, "ann", +1, "sso")])).payload
    payload["memories"]["weights"] = []
    with pytest.raises(PayloadError):
        tuning_from_payload(payload, None)


def test_empty_feedback_changes_nothing() -> None:
    proposal = engine().build(feedback())
    tuning = tuning_from_payload(proposal.payload, None)
    candidates = hits(a=0.5, b=0.4)
    assert [h.score for h in tuning.rerank(VECTORS[PASSWORD], candidates)] == [0.5, 0.4]
    assert isinstance(tuning_from_payload({}, None), NoTuning)


# -- explanation ------------------------------------------------------------------------------------
def test_summary_names_what_changes_and_which_feedback_in_one_screen() -> None:
    votes = [vote(i, PASSWORD, f"u{i}", +1, f"doc{i % 30}") for i in range(60)]
    proposal = engine().build(feedback(votes, [correction(9, LUNCH, "bob", doc_id="canteen")]))
    lines = proposal.summary.splitlines()
    assert len(lines) <= 20
    assert "c9" in proposal.summary and "canteen" in proposal.summary  # corrections lead, however many 👍
    assert lines[1].startswith("↑ canteen (+3.0; corrections c9)")
    assert "similarity ≥ 0.45 for corrections, 0.65 for 👍, 0.70 for 👎" in proposal.summary  # thresholds visible
    canteen = next(d for d in proposal.diff["documents"] if d["doc_id"] == "canteen")
    assert canteen["corrections"] == ["c9"] and canteen["questions"] == [LUNCH]


# -- the per-document baseline ---------------------------------------------------------------------
def test_doc_boost_applies_whatever_the_question() -> None:
    proposal = engine().build(feedback([vote(1, PASSWORD, "ann", +1, "sso")] * 3), "doc-boost")
    tuning = tuning_from_payload(proposal.payload, None)
    assert isinstance(tuning, DocBoostTuning)
    for question in (PASSWORD, LUNCH):
        ranked = tuning.rerank(VECTORS[question], hits(canteen=0.55, sso=0.45))
        assert ranked[0].doc_id == "sso"
    assert DocBoostTuning.multiplier(0) == 1.0 and DocBoostTuning.multiplier(-30) < 0.01


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        engine().build(feedback(), "magic")


# -- the query adapter ------------------------------------------------------------------------------
def _adapter_case(consistent: bool, n: int = 300):  # type: ignore[no-untyped-def]
    from feedback.learning import Memory

    rng = np.random.default_rng(0)
    dim, docs = 8, 4
    chunks = np.eye(dim, dtype=np.float32)[:docs]
    chunk_docs = [f"d{i}" for i in range(docs)]
    memories, vectors = [], {}
    for k in range(n):
        need = k % docs
        # Questions about need i sit nearest to document i+1: a consistent, learnable skew.
        v = chunks[(need + 1) % docs] + 0.6 * chunks[need] + 0.05 * rng.standard_normal(dim)
        question = f"q{k}"
        vectors[question] = (v / np.linalg.norm(v)).astype(np.float32)
        label = need if consistent else int(rng.integers(docs))
        memories.append(Memory(question, f"d{label}", 3.0, "correction", f"c{k}", f"u{k}"))
    return memories, vectors, (lambda: (chunk_docs, chunks))


def test_adapter_is_trained_and_kept_when_it_helps_on_held_out_feedback() -> None:
    from feedback.adapter import train_adapter

    memories, vectors, chunk_vectors = _adapter_case(consistent=True)
    result = train_adapter(memories, vectors, 200, chunk_vectors)
    assert result.matrix is not None, result.note
    assert result.stats["mrr_after"] > result.stats["mrr_before"]
    tuning = LearnedTuning(version=None, params=MemoryParams(), questions=np.zeros((0, 8)), memory_question=np.zeros(0),
                           memory_doc=[], memory_weight=np.zeros(0), adapter=result.matrix)
    moved = tuning.search_query("q0", vectors["q0"])
    assert np.argmax(moved[:4]) == 0 and np.argmax(vectors["q0"][:4]) == 1
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)


def test_adapter_is_left_out_without_enough_pairs_or_without_gain() -> None:
    from feedback.adapter import train_adapter

    memories, vectors, chunk_vectors = _adapter_case(consistent=True, n=100)
    few = train_adapter(memories, vectors, 200, chunk_vectors)
    assert few.matrix is None and "200 needed" in few.note
    memories, vectors, chunk_vectors = _adapter_case(consistent=False)
    noisy = train_adapter(memories, vectors, 200, chunk_vectors)
    assert noisy.matrix is None and "left out" in noisy.note


def test_adapter_goes_into_the_payload_and_the_summary_says_so() -> None:
    memories, vectors, chunk_vectors = _adapter_case(consistent=True)
    votes = [vote(i, m.question, m.user, +1, m.doc_id) for i, m in enumerate(memories)]
    engine_ = LearningEngine(TableEncoder(vectors), chunk_vectors=chunk_vectors)
    proposal = engine_.build(feedback(votes))
    assert "query adapter from" in proposal.summary
    tuning = tuning_from_payload(json.loads(json.dumps(proposal.payload)), None)
    assert tuning.adapter is not None


def test_learning_is_incremental_questions_already_learned_are_not_embedded_again() -> None:
    fb = feedback([vote(1, PASSWORD, "ann", +1, "sso"), vote(2, LUNCH, "bob", -1, "wiki")])
    first = engine().build(fb)
    encoder = TableEncoder(VECTORS)
    again = LearningEngine(encoder)
    assert again.remember_vectors(first.payload) == 2
    second = again.build(fb)
    assert encoder.calls == 0
    tuning = tuning_from_payload(second.payload, None)
    assert tuning.adjustments(VECTORS[PASSWORD_AGAIN]).keys() == {"sso"}


def test_an_earlier_version_s_vectors_are_reused_only_for_the_same_model() -> None:
    fb = feedback([vote(1, PASSWORD, "ann", +1, "sso"), vote(2, LUNCH, "bob", -1, "wiki")])
    first = LearningEngine(CountingEncoder(VECTORS)).build(fb)
    assert first.payload["model"] == "table@8"
    assert LearningEngine(CountingEncoder(VECTORS)).remember_vectors(first.payload) == 2
    other = CountingEncoder(VECTORS, model_id="another-model@8")  # same size, other meaning
    assert LearningEngine(other).remember_vectors(first.payload) == 0
    older = {k: v for k, v in first.payload.items() if k != "model"}  # versions written before names
    assert LearningEngine(CountingEncoder(VECTORS)).remember_vectors(older) == 2
    wider = CountingEncoder(VECTORS)
    wider.dimension = 16
    assert LearningEngine(wider).remember_vectors(older) == 0


# -- question vectors stored at answer time ----------------------------------------------------------
STORED = unit(0, 1, 0)  # deliberately not what the encoder gives for PASSWORD: shows which one is used


def _question_row(proposal, question: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    memories = proposal.payload["memories"]
    return decode_matrix(memories["questions"])[memories["texts"].index(question)]


def test_stored_question_vectors_of_the_same_model_are_used_instead_of_embedding() -> None:
    encoder = CountingEncoder(VECTORS)
    fb = feedback(
        [vote(1, PASSWORD, "ann", +1, "sso", vector=STORED, model=encoder.model_id),
         vote(2, LUNCH, "bob", -1, "wiki")],  # recorded before vectors were kept: embedded as before
    )
    proposal = LearningEngine(encoder).build(fb)
    assert encoder.encoded == [LUNCH]
    np.testing.assert_allclose(_question_row(proposal, PASSWORD), STORED, atol=1e-3)
    np.testing.assert_allclose(_question_row(proposal, LUNCH), VECTORS[LUNCH], atol=1e-3)


def test_stored_vectors_of_corrections_are_used_too() -> None:
    encoder = CountingEncoder(VECTORS)
    fix = replace(correction(1, PASSWORD, "ann", doc_id="sso"), question_vector=STORED, vector_model=encoder.model_id)
    proposal = LearningEngine(encoder).build(feedback(corrections=[fix]))
    assert encoder.encoded == []
    np.testing.assert_allclose(_question_row(proposal, PASSWORD), STORED, atol=1e-3)


@pytest.mark.parametrize(
    "model, vector",
    [("another-model@8", STORED),  # another model: its vectors mean something else
     ("table@8", STORED[:4]),  # the right name but the wrong size: not trusted either
     (None, STORED)],  # no model recorded
)
def test_stored_vectors_of_another_model_are_ignored_and_the_question_embedded(model, vector) -> None:
    encoder = CountingEncoder(VECTORS)
    proposal = LearningEngine(encoder).build(feedback([vote(1, PASSWORD, "ann", +1, "sso", vector=vector, model=model)]))
    assert encoder.encoded == [PASSWORD]
    np.testing.assert_allclose(_question_row(proposal, PASSWORD), VECTORS[PASSWORD], atol=1e-3)


def test_an_encoder_without_a_model_name_never_trusts_stored_vectors() -> None:
    encoder = TableEncoder(VECTORS)  # no model_id: nothing to compare a stored vector with
    LearningEngine(encoder).build(feedback([vote(1, PASSWORD, "ann", +1, "sso", vector=STORED, model="table@8")]))
    assert encoder.calls == 1


def test_a_correction_reaches_further_than_an_upvote_and_a_downvote_least() -> None:
    loosely = unit(1, 1.2, 0)  # cosine ≈ 0.64 with PASSWORD: related, not a repeat
    _, by_fix = learned(feedback(corrections=[correction(1, PASSWORD, "ann", doc_id="sso")]))
    _, by_up = learned(feedback([vote(1, PASSWORD, "ann", +1, "sso")]))
    _, by_down = learned(feedback([vote(1, PASSWORD, "ann", -1, "sso")]))
    fix = by_fix.adjustments(loosely).get("sso", 0.0)
    up = by_up.adjustments(loosely).get("sso", 0.0)
    assert fix > 0.3 and 0 <= up < fix / 10
    assert by_down.adjustments(loosely) == {}


# -- near-repeats of a corrected question (annotation-reply style) ---------------------------------
SIMILAR = "password reset, but for the VPN"
VECTORS[SIMILAR] = unit(1, 0.9, 0)  # cosine 0.74 with PASSWORD: similar, not a near-repeat


def test_approved_correction_is_served_first_for_a_near_repeat_however_low_its_score() -> None:
    _, tuning = learned(feedback(corrections=[correction(3, PASSWORD, "ann", doc_id="sso")]))
    candidates = hits(wiki=0.7, other=0.65, x=0.6, y=0.55, sso=0.1)
    ranked = tuning.rerank(VECTORS[PASSWORD_AGAIN], candidates)  # cosine 0.97
    assert ranked[0].doc_id == "sso"
    assert ranked[0].score >= 0.97 - 1e-6 and ranked[0].score >= ranked[1].score
    assert "approved correction" in ranked[0].reasons[-1]
    # merely similar: bounded boost only, so a source scored far below the rest stays below
    assert tuning.pinned(VECTORS[SIMILAR]) == {}
    assert tuning.rerank(VECTORS[SIMILAR], candidates)[0].doc_id == "wiki"


def test_votes_never_pin_a_document() -> None:
    _, tuning = learned(feedback(votes=[vote(1, PASSWORD, "bob", +1, "sso", "wiki")]))
    assert tuning.pinned(VECTORS[PASSWORD]) == {}
    # bounded in spread units: a vote lifts a document, but not from far below a pool of rivals
    rivals = {f"d{i}": 0.7 - i / 100 for i in range(10)}
    assert tuning.rerank(VECTORS[PASSWORD], hits(**rivals, sso=0.1))[0].doc_id != "sso"


def test_pin_threshold_is_a_visible_parameter() -> None:
    proposal, tuning = learned(
        feedback(corrections=[correction(3, PASSWORD, "ann", doc_id="sso")]),
        memory=MemoryParams(pin_similarity=0.99),
    )
    assert "similarity ≥ 0.99" in proposal.summary
    assert tuning.pinned(VECTORS[PASSWORD_AGAIN]) == {}
    assert tuning.pinned(VECTORS[PASSWORD]) == {"sso": pytest.approx(1.0, abs=1e-4)}


def test_a_questions_similarities_are_computed_once_for_all_the_hooks() -> None:
    _, tuning = learned(feedback([vote(1, PASSWORD, "ann", +1, "sso")], [correction(2, PASSWORD, "bob", doc_id="wiki")]))
    calls = []
    centred = tuning._centred
    tuning._centred = lambda v: calls.append(1) or centred(v)  # type: ignore[method-assign]
    query = VECTORS[PASSWORD_AGAIN]
    expected = tuning.questions @ centred(query)
    tuning.extra_doc_ids(query)
    tuning.extra_hits(query)
    ranked = tuning.rerank(query, hits(wiki=0.5, sso=0.6, other=0.7))
    assert len(calls) == 1
    assert np.array_equal(tuning.similarities(query.copy()), expected)  # same question, same result
    assert len(calls) == 1
    tuning.similarities(VECTORS[LUNCH])
    assert len(calls) == 2  # a new question is computed afresh
    assert ranked == tuning.rerank(query, hits(wiki=0.5, sso=0.6, other=0.7))


# -- other documents' titles: where feedback stops --------------------------------------------------
BABIES_Q = unit(1, 0, 0)  # "are babies at risk?" — remembered, corrected to the "babies" entry
TITLES = {"babies": unit(1, 0.3, 0), "women": unit(0.6, 0, 0.8), "canteen": unit(0, 0, 0, 1)}
PARAPHRASE = unit(0.95, 0.3, 0)  # "can my baby catch it?": nearest to the remembered question
NEIGHBOUR = unit(0.8, 0, 0.6)  # "is it dangerous for pregnant women?": near it, nearer the women title


class FixedEncoder:
    """A stand-in tuned encoder: every question goes to one vector the base model never gives."""

    def encode(self, texts):  # type: ignore[no-untyped-def]
        return np.stack([unit(0, 0, 0, 0, 1) for _ in texts])


def _titled(docs: list[str], weights: list[float], margin: float = 0.0, titles=TITLES):  # type: ignore[no-untyped-def]
    return LearnedTuning(
        version=None, params=MemoryParams(title_margin=margin), questions=np.stack([BABIES_Q]),
        memory_question=np.zeros(len(docs), dtype=np.int64), memory_doc=docs,
        memory_weight=np.asarray(weights, dtype=np.float32), memory_is_vote=np.asarray([w < 0 for w in weights]),
        query_encoder=lambda: FixedEncoder(), encoder_blend=0.5, encoder_reach=0.45,
        title_docs=list(titles) if titles else None,
        title_vectors=np.stack(list(titles.values())) if titles else None,
    )


def _uses_tuned_encoder(tuning: LearnedTuning, vector: np.ndarray) -> bool:
    return not np.allclose(tuning.search_query("q", vector), vector)


def test_feedback_leaves_alone_a_question_another_documents_title_describes_better() -> None:
    tuning = _titled(["babies"], [3.0])
    assert float(NEIGHBOUR @ BABIES_Q) >= 0.45  # near enough for the kernel: only the titles tell
    assert tuning.adjustments(PARAPHRASE)["babies"] > 0
    assert tuning.extra_doc_ids(PARAPHRASE) == ["babies"]
    assert tuning.adjustments(NEIGHBOUR) == {}
    assert tuning.extra_doc_ids(NEIGHBOUR) == []
    candidates = hits(women=0.70, babies=0.69, canteen=0.2)
    assert [(h.doc_id, h.score) for h in tuning.rerank(NEIGHBOUR, candidates)] == [("women", 0.70), ("babies", 0.69), ("canteen", 0.2)]


def test_the_tuned_encoder_reaches_only_questions_a_counting_memory_describes() -> None:
    tuning = _titled(["babies"], [3.0])
    assert _uses_tuned_encoder(tuning, PARAPHRASE)
    np.testing.assert_array_equal(tuning.search_query("q", NEIGHBOUR), NEIGHBOUR)
    assert not _uses_tuned_encoder(tuning, unit(0, 0, 0, 1))  # out of reach as before
    assert not _uses_tuned_encoder(_titled(["women"], [-1.0]), PARAPHRASE)  # a 👎 teaches the encoder nothing


def test_a_memorys_own_document_never_counts_against_it() -> None:
    # The remembered question is answered by the women entry itself: its title, however close
    # to the new question, is the feedback's own answer.
    tuning = _titled(["women"], [3.0])
    assert tuning.adjustments(NEIGHBOUR)["women"] > 0
    assert _uses_tuned_encoder(tuning, NEIGHBOUR)


def test_title_margin_is_visible_and_two_or_no_titles_turn_the_rule_off() -> None:
    assert _titled(["babies"], [3.0], margin=0.2).adjustments(NEIGHBOUR)["babies"] > 0  # 0.8 ≥ 0.96 − 0.2
    off = _titled(["babies"], [3.0], margin=2.0)
    untitled = _titled(["babies"], [3.0], titles=None)
    for tuning in (off, untitled):
        assert tuning.explained(NEIGHBOUR) is None
        assert tuning.adjustments(NEIGHBOUR)["babies"] > 0
        assert _uses_tuned_encoder(tuning, NEIGHBOUR)
    assert "title_margin" in MemoryParams().as_dict()


def test_the_payload_carries_every_documents_title_and_relearning_reuses_their_vectors() -> None:
    titles = {"sso": "Single sign-on", "wiki": "The team wiki", "canteen": "Lunch"}
    table = VECTORS | {"Single sign-on": unit(1, 0, 0.1), "The team wiki": unit(0, 1, 0), "Lunch": unit(0, 0, 1)}
    fb = feedback([vote(1, PASSWORD, "ann", +1, "sso")])
    payload = LearningEngine(TableEncoder(table), LearningParams(), doc_titles=lambda: titles).build(fb).payload  # type: ignore[arg-type]
    assert payload["titles"]["doc_ids"] == ["canteen", "sso", "wiki"]
    np.testing.assert_allclose(decode_matrix(payload["titles"]["vectors"])[1], table["Single sign-on"], atol=1e-3)
    tuning = tuning_from_payload(json.loads(json.dumps(payload)), None)
    assert tuning.title_docs == ["canteen", "sso", "wiki"]
    again = CountingEncoder(table)
    engine = LearningEngine(again, LearningParams(), doc_titles=lambda: titles)  # type: ignore[arg-type]
    assert engine.remember_vectors(payload) == 1 + 3
    engine.build(fb)
    assert again.encoded == []  # neither the question nor any title embedded again
    off = LearningEngine(TableEncoder(table), LearningParams(memory=MemoryParams(title_margin=2)), doc_titles=lambda: titles)  # type: ignore[arg-type]
    assert "titles" not in off.build(fb).payload


def test_new_documents_alone_make_no_new_proposal_but_each_title_snapshot_decodes_as_itself() -> None:
    table = VECTORS | {"Single sign-on": unit(1, 0, 0.1), "The team wiki": unit(0, 1, 0), "Lunch": unit(0, 0, 1)}
    fb = feedback([vote(1, PASSWORD, "ann", +1, "sso")])
    two = {"sso": "Single sign-on", "wiki": "The team wiki"}
    before = LearningEngine(TableEncoder(table), doc_titles=lambda: two).build(fb).payload  # type: ignore[arg-type]
    after = LearningEngine(TableEncoder(table), doc_titles=lambda: two | {"canteen": "Lunch"}).build(fb).payload  # type: ignore[arg-type]
    assert before["id"] == after["id"]  # the same feedback: a schedule does not propose it again
    assert before["titles"]["id"] != after["titles"]["id"]
    assert tuning_from_payload(before, 12).title_docs == ["sso", "wiki"]
    assert tuning_from_payload(after, 12).title_docs == ["canteen", "sso", "wiki"]


def test_current_titles_replace_the_snapshot_embedding_only_what_is_new() -> None:
    names = {"babies": "Babies", "women": "Pregnant women", "canteen": "Lunch"}
    table = {names[d]: v for d, v in TITLES.items()}
    snapshot = LearnedTuning(
        version=4, params=MemoryParams(), questions=np.stack([BABIES_Q]), memory_question=np.zeros(1, dtype=np.int64),
        memory_doc=["babies"], memory_weight=np.asarray([3.0], dtype=np.float32),
        title_docs=["babies", "canteen"], title_vectors=np.stack([TITLES["babies"], TITLES["canteen"]]),
        title_texts=["Babies", "Lunch"],
    )
    assert snapshot.adjustments(NEIGHBOUR)["babies"] > 0  # no title there describes it better
    assert snapshot.with_titles({"babies": "Babies", "canteen": "Lunch"}, TableEncoder(table).encode) is snapshot
    encoder = CountingEncoder(table)
    current = snapshot.with_titles(names | {"old": " "}, encoder.encode)
    assert encoder.encoded == ["Pregnant women"]  # the snapshot's titles are reused
    assert current.title_docs == ["babies", "canteen", "women"] and current.version == 4
    assert current.adjustments(NEIGHBOUR) == {}  # the new entry's title describes it better
    assert current.adjustments(PARAPHRASE)["babies"] > 0
    assert snapshot.adjustments(NEIGHBOUR)["babies"] > 0 and snapshot.title_docs == ["babies", "canteen"]
    renamed = current.with_titles({"babies": "Babies", "women": "Lunch"}, encoder.encode)
    assert renamed.title_docs == ["babies", "women"] and encoder.encoded == ["Pregnant women", "Lunch"]
    np.testing.assert_array_equal(renamed.title_vectors[1], TITLES["canteen"])  # a changed title is embedded again
    assert _titled(["babies"], [3.0], margin=2.0).with_titles(names, encoder.encode).explained(NEIGHBOUR) is None


def test_mismatched_title_vectors_are_refused_when_decoded() -> None:
    payload = engine().build(feedback([vote(1, PASSWORD, "ann", +1, "sso")])).payload
    payload["titles"] = {"doc_ids": ["a", "b", "c"], "texts": ["A", "B", "C"],
                         "vectors": json.loads(json.dumps(_encode(np.stack([unit(1), unit(0, 1)]))))}
    with pytest.raises(PayloadError, match="title vectors"):
        tuning_from_payload(payload, None)
