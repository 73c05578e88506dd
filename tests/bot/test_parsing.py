"""What people type at the command line and in the shell, parsed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.commands.feedback import parse_since, parse_vote
from bot.shell_feedback import split_correction
from feedback.errors import InvalidFeedback


def test_parse_vote():
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
    # a path or a title with spaces: everything after --source names the document
    assert split_correction("Economy only --source examples/handbook/expenses.md") == \
        ("Economy only", "examples/handbook/expenses.md")
    assert split_correction("--source Submitting expenses") == (None, "Submitting expenses")
