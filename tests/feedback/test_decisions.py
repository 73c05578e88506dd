"""Moderators' decisions through the loop, on SQLite and PostgreSQL: who may decide, the one rule
for a failing proposal, approve-and-apply as one step, and refusals on record."""

from __future__ import annotations

import pytest

from feedback.errors import InvalidFeedback, InvalidState, NeedsOverride, PermissionDenied
from tests.support.feedback import MODERATOR, answer


def proposal(store, passed: bool | None = True, payload=None):  # type: ignore[no-untyped-def]
    p = store.proposals.create(summary="learned from 12 votes", diff={"documents": []},
                               payload=payload or {"kind": "none", "n": 1}, created_by="learner")
    if passed is not None:
        p = store.proposals.record_evaluation(p.id, {"passed": passed}, passed)
    return p


def audit_actions(store) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.action for e in store.audit.events(limit=10000)]


def test_only_moderators_decide_and_every_refusal_is_on_record(loop, store):
    a = answer(store)
    c = store.corrections.suggest(a.id, "U2", text="better")
    p = proposal(store)
    attempts = [
        lambda: loop.decide(c.ref, "U2", True),
        lambda: loop.decide(c.ref, "U2", True, text="mine"),
        lambda: loop.decide(c.ref, "U2", False),
        lambda: loop.flag("U3", "U2", "spite"),
        lambda: loop.unflag("U3", "U2"),
        lambda: loop.decide(p.ref, "U2", True),
        lambda: loop.decide(p.ref, "U2", True, override=True),
        lambda: loop.decide(p.ref, "U2", False),
        lambda: loop.apply(p.ref, "U2"),
        lambda: loop.rollback(0, "U2"),
        lambda: loop.decide(c.ref, "", True),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match="not a moderator"):
            attempt()
    assert store.corrections.get(c.id).status == "pending" and store.proposals.get(p.id).status == "evaluated"
    assert not store.users.is_flagged("U3") and store.proposals.versions() == []
    denied = store.audit.events(action="moderation")
    assert len(denied) == len(attempts) and {e.action for e in denied} == {"moderation.denied"}
    assert denied[0].actor == "U2" and denied[0].after == {"attempted": "correction.approve"}
    assert (denied[0].object_type, denied[0].object_id) == ("correction", c.ref)


def test_a_passed_proposal_is_approved_and_applied_in_one_step(loop, store):
    p = proposal(store)
    decision = loop.decide(p.ref, MODERATOR, True, note="looks good")
    assert decision.outcome == "applied" and decision.version.number == 1 and not decision.override
    assert store.proposals.get(p.id).status == "applied" and store.proposals.active_version().number == 1
    assert "tuning version 1 is now live" in decision.message()
    assert loop.live.current().version == 1  # this replica switched at once


def test_a_failing_proposal_needs_the_override_in_every_interface(loop, store):
    p = proposal(store, passed=False)
    with pytest.raises(NeedsOverride) as refused:
        loop.decide(p.ref, MODERATOR, True)
    assert refused.value.proposal_id == p.id and "--override" not in str(refused.value)
    assert store.proposals.get(p.id).status == "failing" and store.proposals.versions() == []
    decision = loop.decide(p.ref, MODERATOR, True, override=True, note="the gate is too strict here")
    assert decision.override and decision.outcome == "applied" and "override" in decision.message()
    [event] = [e for e in store.audit.events() if e.action == "proposal.approve_override"]
    assert event.actor == MODERATOR and event.before == {"status": "failing"} and event.note
    unevaluated = proposal(store, passed=None, payload={"kind": "none", "n": 2})
    with pytest.raises(NeedsOverride, match="not been evaluated"):
        loop.decide(unevaluated.ref, MODERATOR, True)


def test_approved_but_not_applied_is_visible_and_appliable(loop, store):
    p = proposal(store)
    decision = loop.decide(p.ref, MODERATOR, True, apply=False)
    assert decision.outcome == "approved_not_applied" and "not live until it is applied" in decision.message()
    assert [(i.ref, i.status) for i in loop.review_queue().items] == [(p.ref, "approved")]
    assert loop.apply(p.ref, MODERATOR).version.number == 1
    assert loop.review_queue().total == 0
    with pytest.raises(InvalidState):
        loop.apply(p.ref, MODERATOR)


def test_a_crash_while_switching_leaves_nothing_half_done(loop, store, monkeypatch):
    """Approve-and-apply is one transaction: the approval does not survive a failed switch."""
    from feedback.store.proposals import Proposals

    p = proposal(store)

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("power cut")

    monkeypatch.setattr(Proposals, "_activate", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        loop.decide(p.ref, MODERATOR, True)
    monkeypatch.undo()
    assert store.proposals.get(p.id).status == "evaluated" and store.proposals.versions() == []
    assert "proposal.approve" not in audit_actions(store)
    assert loop.decide(p.ref, MODERATOR, True).version.number == 1


def test_corrections_are_decided_once(loop, store):
    a = answer(store)
    c = store.corrections.suggest(a.id, "U2", text="Use the WireGuard profile")
    assert loop.decide(c.ref, MODERATOR, False, note="outdated").outcome == "rejected"
    with pytest.raises(InvalidState, match="already rejected"):
        loop.decide(c.ref, MODERATOR, True)
    with pytest.raises(InvalidFeedback, match="override is for proposals"):
        loop.decide(c.ref, MODERATOR, True, override=True)
    with pytest.raises(InvalidFeedback, match="not a reference"):
        loop.decide("g3", MODERATOR, True)


def test_the_local_owner_moderates_only_when_configured(store):
    from dataclasses import replace

    from feedback.config import LoopConfig
    from feedback.loop import FeedbackLoop
    from tests.support.feedback import NoKnowledgeBase

    owner = FeedbackLoop(store, NoKnowledgeBase, replace(LoopConfig(), local_owner="ada"))
    nobody = FeedbackLoop(store, NoKnowledgeBase, LoopConfig())
    group = FeedbackLoop(store, NoKnowledgeBase, LoopConfig(), is_moderator=lambda u: u == "U_GROUP")
    assert owner.is_moderator("ada") and not owner.is_moderator("bob")
    assert not nobody.is_moderator("ada") and group.is_moderator("U_GROUP") and not group.is_moderator("")
