"""Sending answers (bot/slack/posting.py) against the stand-in: shrink on msg_blocks_too_long,
plain buttons only when Slack's error points at the native feedback block, nothing else hidden."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.answering import Outcome
from bot.slack.posting import MAX_SHRINKS, refuses_native_feedback, send
from retrieval.answer import Answer
from retrieval.types import Hit
from tests.support.slack_stub import SlackStub

HITS = [Hit("vpn", "Connecting to the VPN", "https://wiki.test/vpn", 0.9, "p")]


@pytest.fixture()
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.stop()  # strict: whatever these tests send must be valid unless they say otherwise


def outcome(text: str, native: bool = True) -> Outcome:
    answer = Answer("how do I connect?", text, HITS, False, 2)
    message, blocks = kit.answer_message(answer, 9, native_feedback=native, question=answer.question)
    return Outcome(message, blocks, answer, 9)


def deliver(stub: SlackStub, result: Outcome, deps: Any, **kwargs: Any) -> str:
    client = AsyncWebClient(token="xoxb-test", base_url=stub.url)
    return asyncio.run(send(deps, client, "C1", result, thread_ts="1.5", **kwargs))


LONG = "\n\n".join(f"Step {i}: " + "connect and check the tunnel " * 20 for i in range(16))  # ~9.5k


def test_msg_blocks_too_long_is_answered_with_a_smaller_message(stub):
    stub.blocks_budget = 3000  # a Slack stricter than any report, to make it refuse
    deps = SimpleNamespace(native_feedback=True)
    ts = deliver(stub, outcome(LONG), deps)
    refused = stub.find("chat.postMessage:msg_blocks_too_long")
    (posted,) = stub.find("chat.postMessage")
    assert 1 <= len(refused) <= MAX_SHRINKS and posted["thread_ts"] == "1.5"
    assert stub.messages[("C1", ts)]["blocks"] == posted["blocks"]
    assert "Shortened to fit" in json.dumps(posted["blocks"])
    assert any(b["type"] == "context_actions" for b in posted["blocks"])  # still the same answer
    assert deps.native_feedback is True
    sizes = [len(json.dumps(c["blocks"])) for c in refused + [posted]]
    assert sizes == sorted(sizes, reverse=True)  # each attempt smaller


def test_shrinking_is_bounded_and_then_the_error_propagates(stub):
    stub.blocks_budget = 300  # nothing fits
    with pytest.raises(SlackApiError) as caught:
        deliver(stub, outcome(LONG), SimpleNamespace(native_feedback=True))
    assert caught.value.response["error"] == "msg_blocks_too_long"
    assert len(stub.find("chat.postMessage:msg_blocks_too_long")) == 1 + MAX_SHRINKS
    assert not stub.find("chat.postMessage")


def test_a_notice_is_not_resent(stub):
    stub.blocks_budget = 100
    text, blocks = kit.notice_message(kit.APOLOGY)
    with pytest.raises(SlackApiError):
        deliver(stub, Outcome(text, blocks), SimpleNamespace(native_feedback=True))
    assert len(stub.find("chat.postMessage:msg_blocks_too_long")) == 1


def test_plain_buttons_when_slack_refuses_the_native_feedback_block(stub):
    stub.reject_native_feedback = True
    deps = SimpleNamespace(native_feedback=True)
    deliver(stub, outcome("Use WireGuard [1]."), deps)
    assert len(stub.find("chat.postMessage:invalid_blocks")) == 1
    (posted,) = stub.find("chat.postMessage")
    assert not any(b["type"] == "context_actions" for b in posted["blocks"])
    assert {e["action_id"] for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"]} \
        == {kit.VOTE_UP, kit.VOTE_DOWN, kit.SUGGEST}
    assert deps.native_feedback is False  # and it stays off for this process
    deliver(stub, outcome("Again [1].", native=False), deps)
    assert len(stub.find("chat.postMessage:invalid_blocks")) == 1


def test_invalid_blocks_elsewhere_propagate_and_keep_native_buttons(stub):
    result = outcome("Use WireGuard [1].")
    result.blocks.insert(1, {"type": "section", "text": {"type": "mrkdwn", "text": ""}})  # a bug
    deps = SimpleNamespace(native_feedback=True)
    with pytest.raises(SlackApiError) as caught:
        deliver(stub, result, deps)
    assert caught.value.response["response_metadata"]["messages"] == [
        "[ERROR] must be more than 0 characters [json-pointer:/blocks/1/text/text]"]
    assert deps.native_feedback is True
    assert len(stub.find("chat.postMessage:invalid_blocks")) == 1 and not stub.find("chat.postMessage")
    stub.rejections.clear()  # sent on purpose


def test_which_errors_point_at_the_feedback_block():
    blocks = outcome("x [1]").blocks
    feedback = next(i for i, b in enumerate(blocks) if kit.is_native_feedback(b))

    def error(*pointers: str, name: str = "invalid_blocks") -> dict[str, Any]:
        return {"ok": False, "error": name, "response_metadata": {
            "messages": [f"[ERROR] unsupported type [json-pointer:{p}]" for p in pointers]}}

    assert refuses_native_feedback(error(f"/blocks/{feedback}/type"), blocks)
    assert refuses_native_feedback(error(f"/blocks/{feedback}/elements/0/type"), blocks)
    assert not refuses_native_feedback(error(f"/blocks/{feedback}/type", "/blocks/0/text"), blocks)
    assert not refuses_native_feedback(error("/blocks/0/type"), blocks)
    assert not refuses_native_feedback({"ok": False, "error": "invalid_blocks"}, blocks)  # no pointer
    assert not refuses_native_feedback(error(f"/blocks/{feedback}/type", name="msg_too_long"), blocks)
    assert not refuses_native_feedback(error("/blocks/99/type"), blocks)


def test_an_update_replaces_the_placeholder_and_shrinks_too(stub):
    client = AsyncWebClient(token="xoxb-test", base_url=stub.url)
    text, blocks = kit.notice_message(kit.LOOKING)
    looking = asyncio.run(client.chat_postMessage(channel="C1", thread_ts="1.5", text=text,
                                                  blocks=blocks))["ts"]
    stub.blocks_budget = 3000
    ts = deliver(stub, outcome(LONG), SimpleNamespace(native_feedback=True), update_ts=looking)
    assert ts == looking and stub.find("chat.update:msg_blocks_too_long")
    (update,) = stub.find("chat.update")
    assert stub.messages[("C1", looking)]["blocks"] == update["blocks"]


def test_other_errors_propagate_at_once(stub):
    stub.not_in_channel.add("C1")
    with pytest.raises(SlackApiError) as caught:
        deliver(stub, outcome("x [1]"), SimpleNamespace(native_feedback=True))
    assert caught.value.response["error"] == "not_in_channel"
    assert len(stub.find("chat.postMessage:not_in_channel")) == 1
