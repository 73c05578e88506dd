"""The evaluation gate, against a real knowledge base and a real feedback store."""

from __future__ import annotations

import pytest

from feedback.errors import InvalidState
from feedback.gate import GateConfig, evaluate_payload, evaluate_proposal, render_evaluation
from feedback.learning import LearningEngine
from feedback.store import FeedbackStore
from tests.support.learning import correction, feedback, vote

VPN_QUESTION = "How do I connect to the VPN from home?"


@pytest.fixture()
def store(tiny_services):  # type: ignore[no-untyped-def]
    s = FeedbackStore(tiny_services.settings.effective_database_url, moderators=["mod"])
    s.upgrade()
    yield s
    s.close()


def harmful(embedder):  # type: ignore[no-untyped-def]
    """Feedback that (wrongly) moves the VPN question's answer to the laptop page."""
    votes = [vote(i, VPN_QUESTION, f"u{i}", -1, "vpn") for i in range(5)]
    fixes = [correction(i, VPN_QUESTION, f"u{i}", doc_id="laptop") for i in range(5)]
    return LearningEngine(embedder).build(feedback(votes, fixes))


def helpful(embedder):  # type: ignore[no-untyped-def]
    return LearningEngine(embedder).build(feedback([vote(1, VPN_QUESTION, "ann", +1, "vpn")]))


def test_a_proposal_that_hurts_a_golden_question_is_failing(tiny_services, store, embedder) -> None:
    store.add_golden(VPN_QUESTION, ["vpn"], "mod")
    learned = harmful(embedder)
    proposal = store.create_proposal(summary=learned.summary, diff=learned.diff, payload=learned.payload, created_by="t")
    evaluated = evaluate_proposal(store, tiny_services.knowledge_base, proposal)
    assert evaluated.status == "failing"
    worse = evaluated.evaluation["golden"]["worse"]
    assert worse and worse[0]["question"] == VPN_QUESTION and worse[0]["after"] < worse[0]["before"]
    assert "FAILING" in render_evaluation(evaluated.evaluation)
    # A failing proposal needs an explicit override, which the store audits.
    with pytest.raises(InvalidState):
        store.approve_proposal(proposal.id, "mod")
    approved = store.approve_proposal(proposal.id, "mod", override=True, note="accepted risk")
    assert approved.override
    assert any(e.action == "proposal.approve_override" for e in store.audit())


def test_a_proposal_that_keeps_the_golden_set_passes(tiny_services, store, embedder) -> None:
    store.add_golden(VPN_QUESTION, ["vpn"], "mod")
    learned = helpful(embedder)
    proposal = store.create_proposal(summary=learned.summary, diff=learned.diff, payload=learned.payload, created_by="t")
    evaluated = evaluate_proposal(store, tiny_services.knowledge_base, proposal)
    assert evaluated.status == "evaluated" and evaluated.evaluation["passed"]
    golden = evaluated.evaluation["golden"]
    assert golden["count"] == 1 and golden["after"]["hit@1"] == 1.0
    assert store.approve_proposal(proposal.id, "mod").status == "approved"


def test_tolerance_is_configurable(tiny_services, store, embedder) -> None:
    store.add_golden(VPN_QUESTION, ["vpn"], "mod")
    payload = harmful(embedder).payload
    strict = evaluate_payload(store, tiny_services.knowledge_base, payload, GateConfig(tolerance=0.0))
    lenient = evaluate_payload(store, tiny_services.knowledge_base, payload, GateConfig(tolerance=1.0))
    assert not strict.passed and lenient.passed


def test_recent_questions_report_churn(tiny_services, store, embedder) -> None:
    answer = tiny_services.knowledge_base.search(VPN_QUESTION, 5)
    store.record_answer(question=VPN_QUESTION, asker="ann", origin="cli", hits=answer.hits, answer_text="x",
                        abstained=False, tuning_version=None)
    result = evaluate_payload(store, tiny_services.knowledge_base, harmful(embedder).payload)
    assert result.evaluation["recent"] == {"count": 1, "top_changed": 1, "top_changed_share": 1.0}
    quiet = evaluate_payload(store, tiny_services.knowledge_base, helpful(embedder).payload)
    assert quiet.evaluation["recent"]["top_changed"] == 0


def test_an_applied_proposal_changes_the_bots_answers(tiny_services, store, embedder) -> None:
    """Through Services, as the bot answers: the applied version is used and recorded."""
    question = "Which tool gets me onto the internal network?"
    votes = [vote(1, question, "ann", -1, "laptop")]
    fixes = [correction(1, question, "ann", doc_id="vpn")]
    learned = LearningEngine(embedder).build(feedback(votes, fixes))
    proposal = store.create_proposal(summary=learned.summary, diff=learned.diff, payload=learned.payload, created_by="t")
    evaluate_proposal(store, tiny_services.knowledge_base, proposal)
    store.approve_proposal(proposal.id, "mod")
    version = store.apply_proposal(proposal.id, "mod")
    answer = tiny_services.answer("What tool do I need to reach the internal network?", asker="bob")
    assert answer.tuning_version == version.number
    assert answer.hits[0].doc_id == "vpn" and any("feedback" in r for r in answer.hits[0].reasons)
    assert store.get_answer(answer.extras["answer_id"]).tuning_version == version.number
