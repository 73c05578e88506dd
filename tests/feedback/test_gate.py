"""The evaluation gate, against a real knowledge base and a real feedback store."""

from __future__ import annotations

import pytest

from feedback.errors import NeedsOverride
from feedback.gate import GateConfig, evaluate_payload, render_evaluation
from feedback.learning import LearningEngine
from tests.support.learning import correction, feedback, vote

VPN_QUESTION = "How do I connect to the VPN from home?"


@pytest.fixture()
def loop(tiny_services):  # type: ignore[no-untyped-def]
    """The bot's own loop over the tiny corpus, with `mod` as moderator."""
    tiny_services.settings.moderators = ["mod"]
    return tiny_services.loop


@pytest.fixture()
def store(loop):  # type: ignore[no-untyped-def]
    return loop.store


def harmful(embedder):  # type: ignore[no-untyped-def]
    """Feedback that (wrongly) moves the VPN question's answer to the laptop page."""
    votes = [vote(i, VPN_QUESTION, f"u{i}", -1, "vpn") for i in range(5)]
    fixes = [correction(i, VPN_QUESTION, f"u{i}", doc_id="laptop") for i in range(5)]
    return LearningEngine(embedder).build(feedback(votes, fixes))


def helpful(embedder):  # type: ignore[no-untyped-def]
    return LearningEngine(embedder).build(feedback([vote(1, VPN_QUESTION, "ann", +1, "vpn")]))


def propose(store, learned):  # type: ignore[no-untyped-def]
    return store.proposals.create(summary=learned.summary, diff=learned.diff, payload=learned.payload, created_by="t")


def test_a_proposal_that_hurts_a_golden_question_is_failing(loop, store, embedder) -> None:
    loop.add_golden(VPN_QUESTION, ["vpn"], "mod")
    proposal = propose(store, harmful(embedder))
    evaluated = loop.evaluate(proposal.id)
    assert evaluated.status == "failing"
    worse = evaluated.evaluation["golden"]["worse"]
    assert worse and worse[0]["question"] == VPN_QUESTION and worse[0]["after"] < worse[0]["before"]
    assert "FAILING" in render_evaluation(evaluated.evaluation)
    # A failing proposal needs an explicit override, which is audited.
    with pytest.raises(NeedsOverride):
        loop.decide(proposal.ref, "mod", True)
    decision = loop.decide(proposal.ref, "mod", True, override=True, note="accepted risk")
    assert decision.override and decision.outcome == "applied"
    assert any(e.action == "proposal.approve_override" for e in loop.audit())


def test_a_proposal_that_keeps_the_golden_set_passes(loop, store, embedder) -> None:
    loop.add_golden(VPN_QUESTION, ["vpn"], "mod")
    proposal = propose(store, helpful(embedder))
    evaluated = loop.evaluate(proposal.id)
    assert evaluated.status == "evaluated" and evaluated.evaluation["passed"]
    golden = evaluated.evaluation["golden"]
    assert golden["count"] == 1 and golden["after"]["hit@1"] == 1.0
    assert loop.decide(proposal.ref, "mod", True, apply=False).proposal.status == "approved"


def test_a_gate_without_golden_questions_says_it_checked_nothing(loop, store, embedder) -> None:
    evaluated = loop.evaluate(propose(store, helpful(embedder)).id)
    text = render_evaluation(evaluated.evaluation)
    assert "no golden questions" in text and "nDCG@10 0.000" not in text


def test_tolerance_is_configurable(tiny_services, loop, store, embedder) -> None:
    loop.add_golden(VPN_QUESTION, ["vpn"], "mod")
    payload = harmful(embedder).payload
    strict = evaluate_payload(store, tiny_services.knowledge_base, payload, GateConfig(tolerance=0.0))
    lenient = evaluate_payload(store, tiny_services.knowledge_base, payload, GateConfig(tolerance=1.0))
    assert not strict.passed and lenient.passed


def test_recent_questions_report_churn(tiny_services, store, embedder) -> None:
    answer = tiny_services.knowledge_base.search(VPN_QUESTION, 5)
    store.answers.record(question=VPN_QUESTION, asker="ann", origin="cli", hits=answer.hits, answer_text="x",
                        abstained=False, tuning_version=None)
    result = evaluate_payload(store, tiny_services.knowledge_base, harmful(embedder).payload)
    assert result.evaluation["recent"] == {"count": 1, "top_changed": 1, "top_changed_share": 1.0}
    quiet = evaluate_payload(store, tiny_services.knowledge_base, helpful(embedder).payload)
    assert quiet.evaluation["recent"]["top_changed"] == 0


def test_an_applied_proposal_changes_the_bots_answers(loop, store, embedder) -> None:
    """Through the loop, as the bot answers: the applied version is used and recorded."""
    question = "Which tool gets me onto the internal network?"
    votes = [vote(1, question, "ann", -1, "laptop")]
    fixes = [correction(1, question, "ann", doc_id="vpn")]
    learned = LearningEngine(embedder).build(feedback(votes, fixes))
    proposal = propose(store, learned)
    loop.evaluate(proposal.id)
    version = loop.decide(proposal.ref, "mod", True).version
    answered = loop.answer("What tool do I need to reach the internal network?", asker="bob", origin="cli")
    assert answered.answer.tuning_version == version.number
    assert answered.answer.hits[0].doc_id == "vpn" and any("feedback" in r for r in answered.answer.hits[0].reasons)
    assert loop.get_answer(answered.answer_id).tuning_version == version.number
