"""One vote action, one transaction: claim, toggle and ordering, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from feedback.errors import InvalidFeedback
from tests.support.feedback import answer

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def test_a_delivery_is_claimed_with_its_vote_and_a_repeat_changes_nothing(store):
    a = answer(store)
    first = store.votes.cast(a.id, "U1", 1, source="slack_reaction", delivery="Ev1")
    again = store.votes.cast(a.id, "U1", 1, source="slack_reaction", delivery="Ev1")
    assert (first.action, again.action) == ("cast", "duplicate")
    assert [e["action"] for e in store.votes.history(a.id)] == ["cast"]
    assert store.deliveries.claim("Ev1") is False  # the same key space as every other delivery


def test_a_vote_write_that_fails_after_the_claim_releases_it_so_the_retry_counts(store):
    """The claim and the vote are one transaction: if the vote write dies, Slack's retry of the
    same event is processed instead of being ignored as a duplicate."""
    a = answer(store)
    calls = {"n": 0}

    def die_on_the_vote_write(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO vote (" in statement:  # the upsert (on PostgreSQL inside one combined statement)
            calls["n"] += 1
            raise RuntimeError("the database went away mid-transaction")

    event.listen(store.engine, "before_cursor_execute", die_on_the_vote_write)
    try:
        with pytest.raises(RuntimeError):
            store.votes.cast(a.id, "U1", -1, source="slack_reaction", delivery="EvRetry")
    finally:
        event.remove(store.engine, "before_cursor_execute", die_on_the_vote_write)
    assert calls["n"] == 1
    assert store.votes.for_answer(a.id) == [] and store.votes.history(a.id) == []
    retry = store.votes.cast(a.id, "U1", -1, source="slack_reaction", delivery="EvRetry")
    assert retry.action == "cast" and store.votes.current(a.id, "U1") == -1


def test_toggle_casts_then_withdraws_and_switches(store):
    a = answer(store)
    assert store.votes.apply(a.id, "U1", "toggle", 1).action == "cast"
    assert store.votes.apply(a.id, "U1", "toggle", -1).action == "replace"
    assert store.votes.apply(a.id, "U1", "toggle", -1).action == "remove"
    assert store.votes.current(a.id, "U1") == 0


def test_withdrawing_only_the_value_the_reaction_named(store):
    a = answer(store)
    store.votes.cast(a.id, "U1", -1)
    kept = store.votes.withdraw(a.id, "U1", 1)  # a removed 👍 must not remove the 👎 cast since
    assert kept.action == "none" and store.votes.current(a.id, "U1") == -1
    assert store.votes.withdraw(a.id, "U1", -1).action == "remove"


def test_reactions_applied_out_of_order_leave_the_last_one(store):
    a = answer(store)
    # 👍 at t+1 and 👎 at t+2 arrive in the opposite order: the 👎 is the user's last action.
    assert store.votes.cast(a.id, "U1", -1, at=T0 + timedelta(seconds=2)).action == "cast"
    late = store.votes.cast(a.id, "U1", 1, at=T0 + timedelta(seconds=1))
    assert late.action == "stale" and store.votes.current(a.id, "U1") == -1
    # a removal older than the cast it would undo is ignored too
    assert store.votes.withdraw(a.id, "U1", -1, at=T0 + timedelta(seconds=1.5)).action == "stale"
    assert store.votes.current(a.id, "U1") == -1
    assert [e["action"] for e in store.votes.history(a.id)] == ["cast", "stale", "stale"]


def test_simultaneous_presses_of_one_button_end_in_one_consistent_vote(store_url):
    """Every press toggles; however they interleave, the presses are serialised, so the events
    alternate cast/remove and the vote in force matches the last one."""
    from feedback.store import FeedbackStore

    presses = 6
    stores = [FeedbackStore(store_url) for _ in range(presses)]
    try:
        a = answer(stores[0])
        barrier = threading.Barrier(presses)
        results = []

        def press(s: FeedbackStore, n: int) -> None:
            barrier.wait(10)
            results.append(s.votes.apply(a.id, "U1", "toggle", 1, source="slack_button", delivery=f"press-{n}"))

        threads = [threading.Thread(target=press, args=(s, n)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        actions = [e["action"] for e in stores[0].votes.history(a.id)]
        assert sorted(r.action for r in results) == ["cast"] * 3 + ["remove"] * 3
        assert actions == ["cast", "remove"] * 3
        assert stores[0].votes.current(a.id, "U1") == 0
    finally:
        for s in stores:
            s.close()


def test_control_characters_never_reach_the_database(store):
    """PostgreSQL refuses NUL in text; terminal escapes only do harm later."""
    a = answer(store, question="how\x00 do I\x1b[31m connect?")
    assert store.answers.get(a.id).question == "how do I[31m connect?"
    c = store.corrections.suggest(a.id, "U2", text="Use\x00 WireGuard\r\nthen connect", source_ref="vp\x00n")
    assert (c.text, c.source_ref) == ("Use WireGuard\nthen connect", "vpn")
    vote = store.votes.cast(a.id, "U3", -1, reason="old\x00 page")
    assert vote.action == "cast" and store.votes.for_answer(a.id)[0].reason == "old page"
    with pytest.raises(InvalidFeedback):
        store.corrections.suggest(a.id, "U2", text="\x00\x01 ")


def test_votes_on_abstentions_never_teach(store):
    """A vote on "I couldn't find a good match" is about a gap in the knowledge base, not about
    the closest document shown."""
    abstained = store.answers.record(question="how do I request holidays?", asker="U1", origin="cli",
                                     hits=[], answer_text="no match", abstained=True, tuning_version=None)
    answered = answer(store)
    store.votes.cast(abstained.id, "U2", 1)
    store.votes.cast(answered.id, "U2", 1)
    assert [v.answer_id for v in store.training.feedback().votes] == [answered.id]


def test_satisfaction_has_one_definition_flagged_voters_left_out(store):
    a = answer(store)
    store.votes.cast(a.id, "U1", 1)
    store.votes.cast(a.id, "U2", -1)
    store.users.flag("U2", "U_MOD", "brigading")
    share, votes = store.reports.satisfaction(None)
    week = {w.window: w for w in store.reports.stats().windows}["7d"]
    assert (share, votes) == (1.0, 1) and (week.up, week.down, week.satisfaction) == (1, 0, 1.0)
    assert store.reports.gauges(0.35)["satisfaction_rate"] == 1.0


def test_old_delivery_keys_are_pruned_and_a_claim_can_be_released(store):
    assert store.deliveries.claim("old") and store.deliveries.claim("new")
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("UPDATE processed_event SET at = :at WHERE event_id = 'old'"),
                     {"at": datetime.now(timezone.utc) - timedelta(days=3)})
    assert store.deliveries.prune() == 1
    assert store.deliveries.claim("old") is True  # forgotten, so claimable again
    assert store.deliveries.release("new") is True and store.deliveries.claim("new") is True
