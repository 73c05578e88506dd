"""Pure rules: the vote policy and the parsing of what people type."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.commands.feedback import parse_ref, parse_since, parse_vote
from bot.shell_feedback import split_correction
from feedback.errors import InvalidFeedback
from feedback.validation import VotePolicy


def test_policy_flagged_rate_limited_and_weighted():
    policy = VotePolicy(max_votes_per_hour=2, asker_weight=0.5, other_weight=2.0)
    assert policy.decide(voter="a", asker="a", flagged=False, counted_last_hour=0).weight == 0.5
    assert policy.decide(voter="b", asker="a", flagged=False, counted_last_hour=1).weight == 2.0
    limited = policy.decide(voter="b", asker="a", flagged=False, counted_last_hour=2)
    assert not limited.counted and limited.weight == 0 and "rate limit" in limited.why
    flagged = policy.decide(voter="b", asker="a", flagged=True, counted_last_hour=0)
    assert not flagged.counted and "flagged" in flagged.why
    with pytest.raises(ValueError):
        VotePolicy(asker_weight=-1)


def test_parse_ref_and_vote():
    assert parse_ref("c12") == ("correction", 12) and parse_ref(" P3 ") == ("proposal", 3)
    for bad in ("12", "x3", "c", "c-1", ""):
        with pytest.raises(InvalidFeedback):
            parse_ref(bad)
    assert [parse_vote(v) for v in ("+1", "up", "👍", "-1", "down", "👎")] == [1, 1, 1, -1, -1, -1]
    with pytest.raises(InvalidFeedback):
        parse_vote("0")


def test_parse_since():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_since(None, now) is None
    with pytest.raises(InvalidFeedback):
        parse_since("yesterday", now)


def test_split_correction():
    assert split_correction("Use WireGuard doc:vpn") == ("Use WireGuard", "doc:vpn")
    assert split_correction("https://wiki.example.org/vpn") == (None, "https://wiki.example.org/vpn")
    assert split_correction("just text") == ("just text", None)
