"""The feedback store's rules — what the database enforces under concurrency — each on SQLite and
on PostgreSQL. Who may do what is the loop's (tests/feedback/test_loop.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from feedback.errors import InvalidFeedback, InvalidState, NeedsOverride, NotFound, UnknownAnswer
from feedback.store import FeedbackStore
from feedback.validation import VotePolicy
from tests.support.feedback import MODERATOR, answer, hits


def audit_actions(store: FeedbackStore) -> list[str]:
    return [e.action for e in store.audit.events(limit=10000)]


# -- answers --------------------------------------------------------------------------------


def test_answer_records_what_was_shown(store):
    a = answer(store, hits=hits("vpn", "laptop", "deploy"), tuning_version=None, channel="C1", thread_ts="1.1")
    got = store.answers.get(a.id)
    assert got.question == "how do I connect to the VPN?" and got.asker == "U_ASKER"
    assert [(s.rank, s.doc_id) for s in got.shown] == [(1, "vpn"), (2, "laptop"), (3, "deploy")]
    assert got.shown[0].score == pytest.approx(0.9) and got.shown[0].base_score == pytest.approx(0.8)
    assert got.shown[0]["doc_id"] == "vpn"  # dict-style access works too
    assert got.channel == "C1" and got.created_at.tzinfo is not None


def test_attach_message_and_lookup(store):
    a = answer(store)
    b = answer(store)
    assert store.answers.for_message("C1", "111.2") is None
    store.answers.link_message(a.id, "C1", "111.2")
    assert store.answers.for_message("C1", "111.2").id == a.id
    with pytest.raises(InvalidFeedback):
        store.answers.link_message(b.id, "C1", "111.2")  # one message, one answer
    with pytest.raises(UnknownAnswer):
        store.answers.link_message(9999, "C1", "5.5")
    with pytest.raises(UnknownAnswer):
        store.answers.get(9999)


def test_answered_in_thread_knows_threads_with_a_posted_answer(store):
    """What a replica asks before `conversations.replies`: did any replica answer in this thread?"""
    a = answer(store, channel="C1", thread_ts="100.000001")  # a mention: the thread is its ts
    assert store.answers.answered_in_thread("C1", "100.000001") is False  # recorded, not yet posted
    store.answers.link_message(a.id, "C1", "100.000002")
    assert store.answers.answered_in_thread("C1", "100.000001") is True
    assert store.answers.answered_in_thread("C2", "100.000001") is False  # same ts, another channel
    assert store.answers.answered_in_thread("C1", "100.000002") is False  # a reply is no thread root
    assert store.answers.answered_in_thread("C1", "999.000001") is False
    # an answer to a question asked inside a thread is recorded under that thread's root
    b = answer(store, channel="C1", thread_ts="200.000001")
    store.answers.link_message(b.id, "C1", "200.000009")
    assert store.answers.answered_in_thread("C1", "200.000001") is True
    # answers outside Slack (CLI, shell) have no channel and match nothing
    answer(store, origin="cli")
    assert store.answers.answered_in_thread("", "") is False


def test_empty_question_is_refused(store):
    with pytest.raises(InvalidFeedback):
        answer(store, question="   ")


def test_question_vector_round_trips_to_training_feedback(store):
    rng = np.random.default_rng(3)
    vector = rng.normal(size=384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    a = answer(store, question_vector=vector, vector_model="all-MiniLM-L6-v2@384")
    old = answer(store, question="an answer recorded without a vector")
    store.votes.cast(a.id, "U1", 1)
    store.votes.cast(old.id, "U2", -1)
    c = store.corrections.suggest(a.id, "U3", source_ref="doc:vpn")
    store.corrections.approve(c.id, MODERATOR)
    fb = store.training.feedback()
    with_vector, without = fb.votes
    assert with_vector.vector_model == "all-MiniLM-L6-v2@384" and with_vector.question_vector.dtype == np.float32
    np.testing.assert_allclose(with_vector.question_vector, vector, atol=1e-3)  # kept as float16
    assert without.question_vector is None and without.vector_model is None
    [tc] = fb.corrections
    assert tc.vector_model == "all-MiniLM-L6-v2@384"
    np.testing.assert_allclose(tc.question_vector, vector, atol=1e-3)
    assert json.dumps(with_vector.as_dict())  # still JSON-ready


@pytest.mark.parametrize(
    "vector, model",
    [(np.ones(4), None), (np.ones(4), "  "), (np.ones((2, 4)), "m@4"), (np.array([1.0, np.nan]), "m@2"),
     (np.zeros(0), "m@0")],
)
def test_unusable_question_vectors_are_refused_and_nothing_is_recorded(store, vector, model):
    with pytest.raises(InvalidFeedback, match="question vector"):
        answer(store, question_vector=vector, vector_model=model)
    assert store.answers.recent() == []


def test_training_feedback_reads_vectors_without_a_query_per_row(store):
    """Many votes cost the same number of SQL statements as a few (vectors come with the rows)."""
    from sqlalchemy import event

    def statements() -> int:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(store.engine, "before_cursor_execute", listener)
        try:
            store.training.feedback()
        finally:
            event.remove(store.engine, "before_cursor_execute", listener)
        return len(seen)

    def add(n: int) -> None:
        for i in range(n):
            a = answer(store, question=f"question {i}?", question_vector=np.full(8, 0.5), vector_model="m@8")
            store.votes.cast(a.id, f"U{i}", 1)

    add(2)
    few = statements()
    add(40)
    assert statements() == few
    assert all(v.question_vector is not None for v in store.training.feedback().votes)


# -- votes ----------------------------------------------------------------------------------


def test_one_vote_per_user_later_replaces_removal_removes(store):
    a = answer(store)
    first = store.votes.cast(a.id, "U1", 1)
    second = store.votes.cast(str(a.id), "U1", -1)  # an id from a button value
    assert (first.action, second.action, second.previous) == ("cast", "replace", 1)
    store.votes.cast(a.id, "U2", 1)
    votes = {v.user: v.value for v in store.votes.for_answer(a.id)}
    assert votes == {"U1": -1, "U2": 1}
    assert store.votes.withdraw(a.id, "U1").action == "remove"
    assert store.votes.withdraw(a.id, "U1").action == "none"
    assert {v.user for v in store.votes.for_answer(a.id)} == {"U2"}
    history = [(e["user"], e["value"], e["action"]) for e in store.votes.history(a.id)]
    assert history == [("U1", 1, "cast"), ("U1", -1, "replace"), ("U2", 1, "cast"), ("U1", 0, "remove")]


def test_vote_on_unknown_answer_is_refused_and_changes_nothing(store):
    with pytest.raises(UnknownAnswer, match="no answer #424242"):
        store.votes.cast(424242, "U1", 1)
    for bad in ("abc", -1, 0, 2**70, None, 1.5):
        with pytest.raises(UnknownAnswer):
            store.votes.cast(bad, "U1", 1)
    with pytest.raises(UnknownAnswer):
        store.votes.withdraw(424242, "U1")
    assert store.votes.history() == [] and audit_actions(store) == []


@pytest.mark.parametrize("bad", [0, 2, -2, True])
def test_vote_value_must_be_plus_or_minus_one(store, bad):
    a = answer(store)
    with pytest.raises(InvalidFeedback):
        store.votes.cast(a.id, "U1", bad)
    assert store.votes.for_answer(a.id) == []


def test_rate_limit_stops_counting_but_keeps_raw_votes(store_url):
    s = FeedbackStore(store_url, policy=VotePolicy(max_votes_per_hour=3))
    try:
        answers = [answer(s) for _ in range(5)]
        t0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
        outcomes = [s.votes.cast(a.id, "U1", 1, at=t0 + timedelta(minutes=i)) for i, a in enumerate(answers)]
        assert [o.counted for o in outcomes] == [True, True, True, False, False]
        assert outcomes[-1].weight == 0 and "rate limit" in outcomes[-1].why
        assert len(s.votes.history(user="U1")) == 5  # every raw vote kept
        assert len(s.votes.for_answer(answers[4].id)) == 1
        # an hour later the user counts again; other users were never limited
        assert s.votes.cast(answers[0].id, "U1", -1, at=t0 + timedelta(minutes=61)).counted
        assert s.votes.cast(answers[4].id, "U2", 1, at=t0 + timedelta(minutes=4)).counted
        # training data only has counted votes
        counted = {(v.user, v.answer_id) for v in s.training.feedback().votes}
        assert ("U1", answers[4].id) not in counted and ("U1", answers[0].id) in counted
    finally:
        s.close()


def test_asker_vote_is_weighted_by_policy(store_url):
    s = FeedbackStore(store_url, policy=VotePolicy(asker_weight=0.25, other_weight=1.5))
    try:
        a = answer(s, asker="U_ASKER")
        own = s.votes.cast(a.id, "U_ASKER", 1)
        other = s.votes.cast(a.id, "U_OTHER", -1)
        assert (own.counted, own.weight) == (True, 0.25) and "asker" in own.why
        assert (other.counted, other.weight) == (True, 1.5)
        weights = {v.user: v.weight for v in s.training.feedback().votes}
        assert weights == {"U_ASKER": 0.25, "U_OTHER": 1.5}
    finally:
        s.close()


def test_asker_weight_zero_keeps_vote_but_does_not_count(store_url):
    s = FeedbackStore(store_url, policy=VotePolicy(asker_weight=0.0))
    try:
        a = answer(s, asker="U_ASKER")
        outcome = s.votes.cast(a.id, "U_ASKER", 1)
        assert not outcome.counted and outcome.weight == 0
        assert len(s.votes.for_answer(a.id)) == 1 and s.training.feedback().votes == []
    finally:
        s.close()


def test_flagged_user_counts_zero_and_raw_vote_is_kept(store):
    a = answer(store)
    store.votes.cast(a.id, "U_BAD", 1)
    store.users.flag("U_BAD", MODERATOR, "vote brigading")
    assert store.users.is_flagged("U_BAD")
    outcome = store.votes.cast(a.id, "U_BAD", -1)
    assert (outcome.counted, outcome.weight) == (False, 0.0) and "flagged" in outcome.why
    assert [v.value for v in store.votes.for_answer(a.id)] == [-1]
    assert store.training.feedback().votes == []  # earlier counted vote excluded too while flagged
    store.users.unflag("U_BAD", MODERATOR)
    assert store.votes.cast(a.id, "U_BAD", 1).counted
    assert ["user.flag", "user.unflag"] == [x for x in audit_actions(store) if x.startswith("user.")]


# -- corrections ----------------------------------------------------------------------------


def test_correction_lifecycle_approve_adds_golden_question(store):
    a = answer(store)
    c = store.corrections.suggest(a.id, "U2", text="Use the WireGuard profile", source_ref="doc:vpn")
    assert c.status == "pending" and c.ref == f"c{c.id}"
    assert [i.ref for i in store.reports.review_queue().items] == [c.ref]
    approved = store.corrections.approve(c.id, MODERATOR, note="right")
    assert (approved.status, approved.decided_by, approved.note) == ("approved", MODERATOR, "right")
    assert store.reports.review_queue().total == 0
    golden = store.golden.all()
    assert [(g.question, g.doc_ids, g.correction_id) for g in golden] == [(a.question, ["vpn"], c.id)]
    [tc] = store.training.feedback().corrections
    assert (tc.doc_id, tc.url, tc.text, tc.question) == ("vpn", None, "Use the WireGuard profile", a.question)
    with pytest.raises(InvalidState, match="already approved"):
        store.corrections.approve(c.id, MODERATOR)
    with pytest.raises(InvalidState):
        store.corrections.reject(c.id, MODERATOR)


def test_edit_then_approve_keeps_the_original(store):
    a = answer(store)
    c = store.corrections.suggest(a.id, "U2", text="wrong-ish text", source_ref="https://example.org/vpn")
    edited = store.corrections.approve(c.id, MODERATOR, text="the right text", source_ref="doc:vpn")
    assert (edited.text, edited.source_ref) == ("the right text", "doc:vpn")
    assert (edited.original_text, edited.original_source_ref) == ("wrong-ish text", "https://example.org/vpn")
    event = [e for e in store.audit.events() if e.action == "correction.edit_approve"][0]
    assert event.before["text"] == "wrong-ish text" and event.after["text"] == "the right text"


def test_reject_correction_and_url_source(store):
    a = answer(store)
    c = store.corrections.suggest(a.id, "U2", source_ref="https://wiki.example.org/VPN")
    rejected = store.corrections.reject(c.id, MODERATOR, note="outdated page")
    assert rejected.status == "rejected" and store.golden.all() == []
    assert store.training.feedback().corrections == []
    c2 = store.corrections.suggest(a.id, "U2", source_ref="https://wiki.example.org/VPN")
    store.corrections.approve(c2.id, MODERATOR)
    [tc] = store.training.feedback().corrections
    assert (tc.doc_id, tc.url) == (None, "https://wiki.example.org/VPN")
    assert store.golden.all() == []  # a URL is not a document of the knowledge base


@pytest.mark.parametrize(
    "text, source",
    [(None, None), ("  ", ""), ("x" * 5000, None), (None, "ftp://x.org/a"), (None, "https://two words"), (None, "doc:")],
)
def test_bad_corrections_are_refused(store, text, source):
    a = answer(store)
    with pytest.raises(InvalidFeedback):
        store.corrections.suggest(a.id, "U2", text=text, source_ref=source)
    assert store.corrections.find() == []


def test_correction_on_unknown_answer_is_refused(store):
    with pytest.raises(UnknownAnswer):
        store.corrections.suggest(31337, "U2", text="better")


# -- proposals and versions -----------------------------------------------------------------


def new_proposal(store, payload=None, passed=True):
    p = store.proposals.create(summary="learned from 12 votes", diff={"boosts": {"vpn": 0.2}},
                              payload=payload or {"kind": "none", "n": 1}, created_by="learner")
    if passed is not None:
        p = store.proposals.record_evaluation(p.id, {"ndcg@10": {"before": 0.5, "after": 0.55}}, passed)
    return p


def test_proposal_lifecycle_and_apply_creates_active_version(store):
    p = store.proposals.create(summary="s", diff={"a": 1}, payload={"kind": "none", "n": 1}, created_by="learner")
    assert p.status == "pending" and p.ref == f"p{p.id}"
    with pytest.raises(InvalidState):
        store.proposals.apply(p.id, MODERATOR)  # not approved
    p = store.proposals.record_evaluation(p.id, {"metric": 1}, True)
    assert p.status == "evaluated" and p.evaluation == {"metric": 1}
    p = store.proposals.approve(p.id, MODERATOR, note="looks good", apply=False)[0]
    assert (p.status, p.override) == ("approved", False)
    v = store.proposals.apply(p.id, MODERATOR)
    assert (v.number, v.payload, v.proposal_id, v.active) == (1, {"kind": "none", "n": 1}, p.id, True)
    assert store.proposals.get(p.id).status == "applied" and store.proposals.get(p.id).applied_version == 1
    assert store.proposals.active_version().number == 1
    with pytest.raises(InvalidState):
        store.proposals.apply(p.id, MODERATOR)  # applied once only
    with pytest.raises(InvalidState):
        store.proposals.reject(p.id, MODERATOR)
    actions = audit_actions(store)
    for expected in ("proposal.create", "proposal.evaluate", "proposal.approve", "proposal.apply", "version.activate"):
        assert expected in actions


def test_failing_proposal_needs_an_audited_override(store):
    p = new_proposal(store, passed=False)
    assert p.status == "failing"
    with pytest.raises(NeedsOverride, match="only be approved with an override"):
        store.proposals.approve(p.id, MODERATOR, apply=False)[0]
    assert store.proposals.get(p.id).status == "failing"
    p = store.proposals.approve(p.id, MODERATOR, override=True, note="the gate is too strict here", apply=False)[0]
    assert (p.status, p.override) == ("approved", True)
    [event] = [e for e in store.audit.events() if e.action == "proposal.approve_override"]
    assert event.actor == MODERATOR and event.before == {"status": "failing"} and event.note


def test_unevaluated_proposal_needs_override_and_reject_works(store):
    p = new_proposal(store, passed=None)
    with pytest.raises(NeedsOverride, match="not been evaluated"):
        store.proposals.approve(p.id, MODERATOR, apply=False)[0]
    assert store.proposals.reject(p.id, MODERATOR, note="no").status == "rejected"
    with pytest.raises(InvalidState):
        store.proposals.approve(p.id, MODERATOR, override=True, apply=False)[0]
    with pytest.raises(NotFound):
        store.proposals.get(999)


def test_bad_proposal_input_is_refused(store):
    with pytest.raises(InvalidFeedback):
        store.proposals.create(summary="", diff={}, payload={}, created_by="x")
    with pytest.raises(InvalidFeedback):
        store.proposals.create(summary="s", diff={}, payload={"bad": object()}, created_by="x")
    with pytest.raises(InvalidFeedback):
        store.proposals.create(summary="s", diff=[], payload={}, created_by="x")  # type: ignore[arg-type]
    assert store.proposals.find() == []


def test_failure_inside_apply_leaves_previous_version_active(store, monkeypatch):
    first = new_proposal(store, payload={"kind": "none", "v": 1})
    store.proposals.approve(first.id, MODERATOR, apply=False)[0]
    store.proposals.apply(first.id, MODERATOR)
    second = new_proposal(store, payload={"kind": "none", "v": 2})
    store.proposals.approve(second.id, MODERATOR, apply=False)[0]
    audit_before = audit_actions(store)

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    # the new version row is already inserted (flushed) when the switch fails
    from feedback.store.proposals import Proposals

    monkeypatch.setattr(Proposals, "_activate", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        store.proposals.apply(second.id, MODERATOR)
    monkeypatch.undo()
    assert store.proposals.active_version().number == 1 and store.proposals.active_version().payload == {"kind": "none", "v": 1}
    assert [v.number for v in store.proposals.versions()] == [1]
    assert store.proposals.get(second.id).status == "approved"
    assert audit_actions(store) == audit_before
    # and it can be applied once the fault is gone
    assert store.proposals.apply(second.id, MODERATOR).number == 2


def test_rollback_to_any_earlier_version_and_base(store):
    for n in (1, 2, 3):
        p = new_proposal(store, payload={"kind": "none", "v": n})
        store.proposals.approve(p.id, MODERATOR, apply=False)[0]
        assert store.proposals.apply(p.id, MODERATOR).number == n
    assert store.proposals.active_version().number == 3
    assert store.proposals.rollback(1, MODERATOR).number == 1
    assert store.proposals.active_version().payload == {"kind": "none", "v": 1}
    assert [v.number for v in store.proposals.versions() if v.active] == [1]
    assert store.proposals.rollback(2, MODERATOR).number == 2
    with pytest.raises(InvalidState):
        store.proposals.rollback(2, MODERATOR)
    with pytest.raises(NotFound):
        store.proposals.rollback(7, MODERATOR)
    assert store.proposals.rollback(0, MODERATOR) is None and store.proposals.active_version() is None
    # versions are immutable: rollbacks never create or alter one
    assert [(v.number, v.payload["v"]) for v in store.proposals.versions()] == [(1, 1), (2, 2), (3, 3)]
    rollbacks = [e for e in store.audit.events() if e.action == "version.rollback"]
    assert [(e.before, e.after) for e in rollbacks] == [
        ({"active": 3}, {"active": 1}), ({"active": 1}, {"active": 2}), ({"active": 2}, {"active": None})
    ]
    # the next apply continues the numbering
    p = new_proposal(store)
    store.proposals.approve(p.id, MODERATOR, apply=False)[0]
    assert store.proposals.apply(p.id, MODERATOR).number == 4


# -- audit, review, stats, export, events ------------------------------------------------------


def test_every_state_change_is_audited_with_who_what_when(store):
    a = answer(store)
    store.votes.cast(a.id, "U1", 1)
    store.votes.cast(a.id, "U1", -1)
    store.votes.withdraw(a.id, "U1")
    c = store.corrections.suggest(a.id, "U2", text="t")
    store.corrections.reject(c.id, MODERATOR)
    store.users.flag("U9", MODERATOR, "spam")
    store.golden.add("how to deploy?", ["deploy"], MODERATOR)
    events = store.audit.events()
    assert [e.action for e in events] == [
        "vote.cast", "vote.replace", "vote.remove", "correction.suggest", "correction.reject", "user.flag", "golden.add"
    ]
    assert all(e.at.tzinfo is not None and e.actor for e in events)
    assert events[1].before["value"] == 1 and events[1].after["value"] == -1
    assert events[4].object_type == "correction" and events[4].object_id == str(c.id)
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert store.audit.events(since=future) == []
    assert [e.action for e in store.audit.events(action="vote")] == ["vote.cast", "vote.replace", "vote.remove"]
    assert len(store.audit.events(limit=2)) == 2 and store.audit.events(limit=2)[-1].action == "golden.add"


def test_pending_review_is_paged(store):
    a = answer(store)
    for i in range(5):
        store.corrections.suggest(a.id, f"U{i}", text=f"text {i}")
    new_proposal(store)
    first = store.reports.review_queue(1, 4)
    second = store.reports.review_queue(2, 4)
    assert first.total == 6 and first.pages == 2 and len(first.items) == 4 and len(second.items) == 2
    refs = [i.ref for i in first.items + second.items]
    assert len(set(refs)) == 6 and refs[-1].startswith("p")


def test_stats_satisfaction_over_windows(store):
    now = datetime.now(timezone.utc)
    a, b = answer(store), answer(store)
    store.votes.cast(a.id, "U1", 1, at=now - timedelta(hours=1))
    store.votes.cast(a.id, "U2", 1, at=now - timedelta(hours=2))
    store.votes.cast(b.id, "U3", -1, at=now - timedelta(days=3))
    store.votes.cast(b.id, "U4", -1, at=now - timedelta(days=40))
    store.corrections.suggest(a.id, "U2", text="t")
    numbers = store.reports.stats(now=now)
    by = {w.window: w for w in numbers.windows}
    assert (by["24h"].up, by["24h"].down, by["24h"].satisfaction) == (2, 0, 1.0)
    assert by["7d"].satisfaction == pytest.approx(2 / 3)
    assert by["all"].satisfaction == pytest.approx(0.5) and by["all"].answers == 2
    assert numbers.pending_corrections == 1 and numbers.active_version is None


def test_export_jsonl_and_csv(store):
    import csv
    import io

    a = answer(store, hits=hits("vpn", "laptop"))
    answer(store, question="second question?")
    store.votes.cast(a.id, "U1", 1)
    store.votes.cast(a.id, "U2", -1, reason="old")
    store.corrections.suggest(a.id, "U2", text="better", source_ref="doc:vpn")
    from feedback.export import export_feedback

    lines = export_feedback(store.reports.export_rows(), "jsonl").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["question"] == a.question and first["asker"] == "U_ASKER"
    assert [s["doc_id"] for s in first["sources"]] == ["vpn", "laptop"]
    assert [(v["user"], v["value"]) for v in first["votes"]] == [("U1", 1), ("U2", -1)]
    assert all("time" in v for v in first["votes"])
    assert first["corrections"][0]["text"] == "better" and first["corrections"][0]["status"] == "pending"
    rows = list(csv.DictReader(io.StringIO(export_feedback(store.reports.export_rows(), "csv"))))
    assert len(rows) == 2 and rows[0]["up"] == "1" and rows[0]["down"] == "1"
    assert rows[0]["sources"] == "vpn laptop" and json.loads(rows[0]["votes"])[1]["user"] == "U2"
    with pytest.raises(InvalidFeedback):
        export_feedback(store.reports.export_rows(), "xml")


def test_claim_event_once(store):
    assert store.deliveries.claim("Ev1") is True
    assert store.deliveries.claim("Ev1") is False
    assert store.deliveries.claim("Ev2") is True
    with pytest.raises(InvalidFeedback):
        store.deliveries.claim("")


def test_golden_set(store):
    g = store.golden.add("how do I deploy?", ["deploy", " "], "U_MOD")
    assert g.doc_ids == ["deploy"] and store.golden.all()[0].question == "how do I deploy?"
    with pytest.raises(InvalidFeedback):
        store.golden.add("q", [], "U_MOD")


def test_training_feedback_since(store):
    a = answer(store)
    old = datetime.now(timezone.utc) - timedelta(days=10)
    store.votes.cast(a.id, "U1", 1, at=old)
    store.votes.cast(a.id, "U2", -1)
    recent = store.training.feedback(since=datetime.now(timezone.utc) - timedelta(days=1))
    assert [v.user for v in recent.votes] == ["U2"]
    assert [s.doc_id for s in recent.votes[0].shown] == ["vpn", "laptop"]
    assert len(store.training.feedback().votes) == 2


def test_database_refuses_to_alter_audit_events_and_versions(store):
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    p = new_proposal(store)
    store.proposals.approve(p.id, MODERATOR, apply=False)[0]
    store.proposals.apply(p.id, MODERATOR)
    for sql in (
        "UPDATE audit_event SET actor = 'someone else'",
        "DELETE FROM audit_event",
        "UPDATE tuning_version SET payload = '{}'",
        "DELETE FROM tuning_version",
    ):
        with pytest.raises(DatabaseError, match="append-only|immutable"):
            with store.engine.begin() as conn:
                conn.execute(text(sql))
    assert store.proposals.versions()[0].payload == {"kind": "none", "n": 1}
    assert all(e.actor in (MODERATOR, "learner", "gate") for e in store.audit.events())
