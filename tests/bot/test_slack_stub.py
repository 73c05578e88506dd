"""The Web API stand-in refuses what Slack refuses, the way Slack does, and says so at the end.

Each test sends one payload with slack_sdk's own client (as the bot does) and checks the answer:
the error name, Slack's `[ERROR] ... [json-pointer:...]` messages, and whether the refusal counts
against the bot (`invalid_payloads`, which make `stop()` fail) or is excused (a test setting
asked for it, or the test made up state Slack would have).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack import blocks as kit
from retrieval.answer import Answer
from retrieval.types import Hit
from tests.support.slack_stub import SlackStub, new_trigger_id


@pytest.fixture()
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.strict = False  # these tests send invalid payloads on purpose
    server.stop()


@pytest.fixture()
def client(stub: SlackStub) -> WebClient:
    return WebClient(token="xoxb-test", base_url=stub.url)


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as caught:
        call()
    return dict(caught.value.response.data)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def table(rows: int = 1) -> dict[str, Any]:
    return {"type": "table", "rows": [[{"type": "raw_text", "text": str(i)}] for i in range(rows)]}


INVALID = {
    "section text over 3,000": ([section("x" * 3001)], "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"),
    "empty text": ([section("")], "must be more than 0 characters [json-pointer:/blocks/0/text/text]"),
    "unknown block": ([{"type": "fancy"}], "unsupported type: fancy [json-pointer:/blocks/0/type]"),
    "unknown property": ([{"type": "divider", "colour": "red"}], "unsupported property: colour"),
    "too many blocks": ([{"type": "divider"}] * 51, "must be less than 51 items [json-pointer:/blocks]"),
    "mrkdwn button label": ([{"type": "actions", "elements": [{"type": "button", "action_id": "a",
                                                                "text": {"type": "mrkdwn", "text": "x"}}]}],
                            "must be of type plain_text [json-pointer:/blocks/0/elements/0/text/type]"),
    "button value over 2,000": ([{"type": "actions", "elements": [{"type": "button", "action_id": "a", "value": "v" * 2001,
                                                                    "text": {"type": "plain_text", "text": "x"}}]}],
                                "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]"),
    "button in a context": ([{"type": "context", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x"}}]}],
                            "unsupported type: button [json-pointer:/blocks/0/elements/0/type]"),
    "eleven context elements": ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}], "must be less than 11 items"),
    "duplicate block_id": ([{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}], "duplicate block_id: a"),
    "markdown over 12,000": ([{"type": "markdown", "text": "x" * 6001}, {"type": "markdown", "text": "y" * 6000}],
                             "markdown blocks exceed 12000 characters in total [json-pointer:/blocks/1/text]"),
    "table of 101 rows": ([table(101)], "must be less than 101 items [json-pointer:/blocks/0/rows]"),
    "table cell of mrkdwn": ([{"type": "table", "rows": [[{"type": "mrkdwn", "text": "x"}]]}], "unsupported type: mrkdwn"),
    "feedback button without value": ([{"type": "context_actions", "elements": [{"type": "feedback_buttons",
                                                                                  "action_id": "f",
                                        "positive_button": {"text": {"type": "plain_text", "text": "y"}},
                                        "negative_button": {"text": {"type": "plain_text", "text": "n"}, "value": "n"}}]}],
                                      "missing required field: value"),
    "rich_text leaf unknown": ([{"type": "rich_text",
                                 "elements": [{"type": "rich_text_quote", "elements": [{"type": "txt", "text": "x"}]}]}],
                               "unsupported type: txt [json-pointer:/blocks/0/elements/0/elements/0/type]"),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_blocks_are_refused_like_slack(stub, client, name):
    blocks, message = INVALID[name]
    answer = refused(lambda: client.chat_postMessage(channel="C1", text="t", blocks=blocks))
    assert answer["ok"] is False and answer["error"] == "invalid_blocks"
    assert any(message in m for m in answer["errors"])
    assert all(m.startswith("[ERROR] ") for m in answer["response_metadata"]["messages"])
    assert stub.find("chat.postMessage:invalid_blocks") and not stub.find("chat.postMessage")
    (rejection,) = stub.invalid_payloads
    assert rejection.method == "chat.postMessage" and not rejection.excused


def test_message_size_limits(stub, client):
    assert refused(lambda: client.chat_postMessage(channel="C1", text="x" * 40_001))["error"] == "msg_too_long"
    big = [section("x" * 2900) for _ in range(5)]  # each valid, 14,500 characters in all
    assert refused(lambda: client.chat_postMessage(channel="C1", text="t", blocks=big))["error"] == \
        "msg_blocks_too_long"
    assert refused(lambda: client.chat_postMessage(channel="C1", text="t", blocks=[table(), table()])) == {
        "ok": False, "error": "invalid_attachments", "errors": ["only_one_table_allowed"],
        "response_metadata": {"messages": ["[ERROR] only_one_table_allowed"]}}
    with pytest.warns(UserWarning, match="text"):  # slack_sdk warns too
        assert refused(lambda: client.chat_postMessage(channel="C1"))["error"] == "no_text"
    assert refused(lambda: client.api_call("chat.postMessage", json={
        "channel": "C1", "text": "t", "blocks": {"type": "divider"}}))["error"] == "invalid_blocks_format"
    assert [r.error for r in stub.invalid_payloads] == [
        "msg_too_long", "msg_blocks_too_long", "invalid_attachments", "no_text", "invalid_blocks_format"]
    # a lowered budget is the test's own doing: refused, but not held against the bot
    stub.blocks_budget = 500
    assert refused(lambda: client.chat_postMessage(channel="C1", text="t", blocks=[section("x" * 600)]))[
        "error"] == "msg_blocks_too_long"
    assert len(stub.invalid_payloads) == 5 and stub.rejections[-1].excused


def test_channels_the_bot_cannot_post_in(stub, client):
    stub.not_in_channel.add("CPRIVATE")
    stub.missing_channels.add("CGONE")
    assert refused(lambda: client.chat_postMessage(channel="CPRIVATE", text="t"))["error"] == "not_in_channel"
    assert refused(lambda: client.chat_postMessage(channel="CGONE", text="t"))["error"] == "channel_not_found"
    assert refused(lambda: client.conversations_replies(channel="CPRIVATE", ts="1.2"))["error"] == \
        "not_in_channel"
    assert stub.invalid_payloads == []  # asked for by the test
    # a message Slack does not have: refused, but a test may have made up the button's message
    assert refused(lambda: client.chat_update(channel="C1", ts="123.456", text="t"))["error"] == \
        "message_not_found"
    posted = client.chat_postMessage(channel="C1", text="t", thread_ts="1.5")
    client.chat_update(channel="C1", ts=posted["ts"], text="edited")
    assert stub.messages[("C1", posted["ts"])]["thread_ts"] == "1.5"  # an update keeps the thread
    assert stub.invalid_payloads == [] and stub.rejections[-1].excused
    assert refused(lambda: client.api_call("chat.update", json={"channel": "C1", "text": "t"}))[
        "error"] == "invalid_arguments"
    assert [r.error for r in stub.invalid_payloads] == ["invalid_arguments"]


MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Title"},
         "blocks": [section("hello")]}


def test_views_open_needs_a_fresh_unused_trigger_and_a_valid_view(stub, client):
    fresh = new_trigger_id()
    assert client.views_open(trigger_id=fresh, view=MODAL)["ok"]
    assert refused(lambda: client.views_open(trigger_id=fresh, view=MODAL))["error"] == "exchanged_trigger_id"
    stale = new_trigger_id(time.time() - 3.5)
    assert refused(lambda: client.views_open(trigger_id=stale, view=MODAL))["error"] == "expired_trigger_id"
    assert refused(lambda: client.views_open(trigger_id="made-up", view=MODAL))["error"] == "invalid_trigger_id"
    bad = MODAL | {"title": {"type": "plain_text", "text": "A title far over the limit"}}
    answer = refused(lambda: client.views_open(trigger_id=new_trigger_id(), view=bad))
    assert answer["error"] == "invalid_arguments"
    assert "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]" in \
        answer["response_metadata"]["messages"]
    form = MODAL | {"blocks": [{"type": "input", "label": {"type": "plain_text", "text": "x"},
                                "element": {"type": "plain_text_input", "action_id": "a"}}]}
    answer = refused(lambda: client.views_open(trigger_id=new_trigger_id(), view=form))
    assert "missing required field: submit [json-pointer:/view/submit]" in answer["errors"]
    home_with_markdown = {"type": "home", "blocks": [{"type": "markdown", "text": "x"}]}
    answer = refused(lambda: client.views_publish(user_id="U1", view=home_with_markdown))
    assert "unsupported type: markdown [json-pointer:/view/blocks/0/type]" in answer["errors"]
    assert refused(lambda: client.views_publish(user_id="U1", view=MODAL))["error"] == "invalid_arguments"
    assert client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("hi")]})["ok"]


def test_response_url_posts_are_validated(stub):
    ok = httpx.post(stub.response_url("a"), json={"text": "fine", "blocks": [section("fine")]})
    assert ok.status_code == 200 and ok.text == "ok"
    bad = httpx.post(stub.response_url("b"), json={"text": "t", "blocks": [section("")]})
    assert bad.status_code == 400 and bad.text == "invalid_blocks"
    assert stub.find("response_url") and stub.find("response_url:invalid_blocks")


def test_rejecting_native_feedback_points_at_the_block(stub, client):
    answer = Answer("q", "The answer [1].", [Hit("d", "Doc", "https://x.test", 0.9, "p")], False, None)
    _, blocks = kit.answer_message(answer, 3, native_feedback=True)
    stub.reject_native_feedback = True
    response = refused(lambda: client.chat_postMessage(channel="C1", text="t", blocks=blocks))
    index = next(i for i, b in enumerate(blocks) if b["type"] == "context_actions")
    assert response["response_metadata"]["messages"] == [
        f"[ERROR] unsupported type: context_actions [json-pointer:/blocks/{index}/type]"]
    assert stub.invalid_payloads == []
    _, plain = kit.answer_message(answer, 3, native_feedback=False)
    assert client.chat_postMessage(channel="C1", text="t", blocks=plain)["ok"]


def test_rate_limits_still_answer_429_with_retry_after(stub, client):
    stub.rate_limit("chat.postMessage", times=1, retry_after=2)
    answer = refused(lambda: client.chat_postMessage(channel="C1", text="t"))
    assert answer["error"] == "ratelimited"
    assert stub.find("chat.postMessage:429")
    assert client.chat_postMessage(channel="C1", text="t")["ok"]


def test_stop_fails_when_the_bot_sent_what_slack_would_refuse():
    server = SlackStub().start()
    client = WebClient(token="xoxb-test", base_url=server.url)
    server.not_in_channel.add("CX")
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="CX", text="t")
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C1", text="t", blocks=[section("x" * 3001)])
    with pytest.raises(AssertionError, match="(?s)1 payload.*invalid_blocks.*3001"):
        server.stop()
    clean = SlackStub().start()
    WebClient(token="xoxb-test", base_url=clean.url).chat_postMessage(
        channel="C1", text="t", blocks=json.loads(json.dumps([section("fine")])))
    clean.stop()  # nothing refused: no error
