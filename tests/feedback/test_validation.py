"""Pure rules: the vote policy, references, and the text cleaning applied before storing."""

from __future__ import annotations

import pytest

from feedback.errors import InvalidFeedback
from feedback.refs import Ref, correction_ref, parse_ref, proposal_ref, try_parse_ref
from feedback.text import clean_text
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


def test_references_are_formatted_and_parsed_in_one_place():
    assert parse_ref("c12") == Ref("correction", 12) and parse_ref(" P #3 ") == Ref("proposal", 3)
    assert str(parse_ref("g5")) == "g5" and correction_ref(7) == "c7" and proposal_ref(2) == "p2"
    for bad in ("12", "x3", "c", "c-1", "", "c1.5"):
        with pytest.raises(InvalidFeedback):
            parse_ref(bad)
    with pytest.raises(InvalidFeedback, match="c<number> for a correction or p<number> for a proposal"):
        parse_ref("a12", "correction", "proposal")
    assert try_parse_ref("a12", "answer") == Ref("answer", 12) and try_parse_ref("zz") is None


def test_text_cleaning_keeps_lines_and_drops_controls():
    assert clean_text("a\x00b\x1b[0mc\r\nd\te\u0085f\ud800") == "ab[0mc\nd\te\nf"
