"""The conversation's Block Kit: valid for Slack's models, escaped, within a button's limits."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from slack_sdk.models.blocks import Block

from bot.slack import conversation_blocks as talk


def valid(blocks: list[dict]) -> None:
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()  # raises SlackObjectFormationError where Slack would refuse it


def test_every_message_is_valid_block_kit():
    for text, blocks in [
        talk.after_downvote(7, "Sorry that didn't help."),
        talk.expert_request("S0EXPERTS", "UASKER", "how do I <b>order</b> cards & more?", "UOTHER", True),
        talk.offer("how long is it valid?", talk.offer_value(7, "1.2", "UEXPERT", "90 days") or "", 7),
        talk.with_expert_button("an abstention", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}], 7),
    ]:
        assert text and blocks
        valid(blocks)


def test_what_people_wrote_is_escaped_and_the_group_is_the_only_ping():
    _, blocks = talk.expert_request("S0EXPERTS", "UASKER", "<!channel> help & <@U9>", "UOTHER", False)
    blob = json.dumps(blocks)
    assert "<!subteam^S0EXPERTS>" in blob and "<!channel>" not in blob and "<@U9>" not in blob
    assert "&lt;!channel&gt; help &amp; &lt;@U9&gt;" in blob and "marked as not helpful" in blob


def test_an_offer_carries_the_reply_and_refuses_what_does_not_fit_a_button():
    value = talk.offer_value(7, "1.2", "UEXPERT", "Ask the office manager ✉️")
    assert value is not None and talk.parse_offer(value) == {"a": 7, "ts": "1.2", "u": "UEXPERT",
                                                             "t": "Ask the office manager ✉️"}
    assert talk.offer_value(7, "1.2", "UEXPERT", "x" * 2000) is None
    for bad in ("", "{}", '{"a": "7", "ts": "1", "u": "U", "t": "x"}', '{"a": 7, "ts": "", "u": "U", "t": "x"}', "[1]"):
        with pytest.raises(ValueError):
            talk.parse_offer(bad)


def test_provenance_goes_above_the_review_buttons():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "c"}}, {"type": "actions", "elements": []}]
    thread = SimpleNamespace(origin="slack_thread", permalink="https://x.slack.com/archives/C1/p1", user="UEXPERT")
    shown = talk.with_provenance(blocks, thread)
    assert [b["type"] for b in shown] == ["section", "context", "actions"]
    assert "<https://x.slack.com/archives/C1/p1|their reply in the thread>" in json.dumps(shown)
    form = SimpleNamespace(origin="slack", permalink=None, user="U1")
    assert talk.with_provenance(blocks, form) == blocks
