"""End to end: the real `askloop serve --http` process, signed requests, the Web API stand-in.

One bot process serves the whole module; every test uses its own channel and user ids, so
tests do not see each other's answers or votes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack import blocks as kit
from tests.conftest import TINY_CORPUS
from tests.slack_stub import BOT_ID, BOT_USER_ID, SlackStub
from tests.slack_support import (
    BotProcess,
    SlackClient,
    block_action,
    find_action,
    mention,
    message,
    prepare_home,
    reaction,
    unique,
    view_submission,
    wait_until,
)

pytestmark = pytest.mark.slow

MODERATOR = "UMODERATOR1"
GROUP_MODERATOR = "UGROUPMOD1"
REVIEW_CHANNEL = "CREVIEW01"

ESCAPE_DOC = {
    "_id": "paging",
    "title": "Paging <!channel> & <@U999> everyone",
    "text": "To page the whole team during an outage write <!channel> in #ops & call the "
            "incident phone. Outage paging rules: never use <!here> for small issues.",
}


@pytest.fixture(scope="module")
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    server.usergroups["S0MODS"] = [GROUP_MODERATOR]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, embedder: Any, stub: SlackStub) -> Iterator[BotProcess]:
    root = tmp_path_factory.mktemp("slack-e2e")
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS + [ESCAPE_DOC]) + "\n")
    home = root / "home"
    prepare_home(home, corpus, embedder)
    process = BotProcess(home, stub, env={
        "ASKLOOP_MODERATORS": MODERATOR,
        "ASKLOOP_MODERATOR_GROUP": "S0MODS",
        "ASKLOOP_REVIEW_CHANNEL": REVIEW_CHANNEL,
    }).start()
    process.home = home  # type: ignore[attr-defined]
    yield process
    process.stop()


@pytest.fixture(scope="module")
def slack(bot: BotProcess) -> SlackClient:
    return SlackClient(bot.url)


@pytest.fixture(scope="module")
def store(bot: BotProcess) -> Iterator[Any]:
    from feedback.store import FeedbackStore

    s = FeedbackStore(f"sqlite:///{bot.home}/askloop.db", moderators=[MODERATOR])  # type: ignore[attr-defined]
    yield s
    s.close()


def ask(slack: SlackClient, stub: SlackStub, question: str, channel: str, user: str) -> Any:
    """Mention the bot; return the answer's chat.postMessage call."""
    event = mention(question, user=user, channel=channel)
    response, _ = slack.event(event)
    assert response.status_code == 200
    (call,) = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel
                            and c.get("thread_ts") == event["ts"])
    return call, event


def answer_ts(stub: SlackStub, call: Any) -> str:
    """The ts Slack gave the answer (what reactions refer to)."""
    for (channel, ts), msg in list(stub.messages.items()):
        if channel == call["channel"] and msg.get("thread_ts") == call.get("thread_ts") and \
                msg.get("blocks") == call.get("blocks"):
            return ts
    raise AssertionError("answer not found in the stub's messages")


def answer_id_of(call: Any) -> int:
    element = find_action(call["blocks"], kit.SUGGEST)
    return int(element["value"])


# -- answering ----------------------------------------------------------------------------------


def test_mention_gets_threaded_answer_with_sources_and_buttons(slack, stub, store):
    channel, user = unique("C"), unique("U")
    call, event = ask(slack, stub, "how do I connect to the VPN?", channel, user)
    assert call["thread_ts"] == event["ts"]
    text = json.dumps(call["blocks"])
    assert "WireGuard" in text
    assert "Connecting to the VPN" in text  # the numbered source
    assert "[1]" in text
    feedback = find_action(call["blocks"], kit.FEEDBACK_BUTTONS)
    assert feedback["type"] == "feedback_buttons"
    answer_id = answer_id_of(call)
    record = wait_until(lambda: store.answer_for_message(channel, answer_ts(stub, call)))
    assert record.id == answer_id and record.asker == user
    assert record.question == "how do I connect to the VPN?"
    assert record.shown[0].doc_id == "vpn"


def test_bot_and_own_messages_are_ignored(slack, stub):
    channel = unique("C")
    bot_message = message("how do I connect to the VPN?", user="UOTHERBOT", channel=channel,
                          channel_type="im", bot_id="BOTHER")
    slack.event(bot_message)
    own = message("how do I connect to the VPN?", user=BOT_USER_ID, channel=channel, channel_type="im")
    slack.event(own)
    bot_mention = mention("expenses?", user="UOTHERBOT", channel=channel, bot_id="BOTHER")
    slack.event(bot_mention)
    # a human DM afterwards is answered, and is the only answer in that channel
    human = message("how do I submit expenses?", user=unique("U"), channel=channel, channel_type="im")
    slack.event(human)
    stub.wait_for("chat.postMessage", lambda c: c.get("thread_ts") == human["ts"])
    time.sleep(0.3)
    assert len(stub.find("chat.postMessage", lambda c: c.get("channel") == channel)) == 1


def test_escaping_of_question_and_document(slack, stub):
    channel, user = unique("C"), unique("U")
    call, _ = ask(slack, stub, "how do I page <!channel> &amp; <@U123> during an outage?", channel, user)
    blob = call.blob()
    assert "<!channel>" not in blob and "<!here>" not in blob and "<@U123>" not in blob
    assert "<@U999>" not in blob
    assert "&lt;!channel&gt;" in blob  # the document's text, shown literally
    assert "&amp;" in blob
    assert "<!channel>" not in call["text"]


def test_thread_follow_up_is_answered_only_where_bot_answered(slack, stub):
    channel, user = unique("C"), unique("U")
    call, event = ask(slack, stub, "how do I connect to the VPN?", channel, user)
    follow = message("and how do I request holidays?", user=user, channel=channel,
                     thread_ts=event["ts"])
    slack.event(follow)
    stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                  "Requesting holidays" in json.dumps(c.get("blocks")))
    # a thread the bot never replied in: nothing
    other = message("and the laptop policy?", user=user, channel=channel, thread_ts="1.000001")
    slack.event(other)
    top = message("laptop policy?", user=user, channel=channel)  # not in a thread, no mention
    slack.event(top)
    time.sleep(0.5)
    assert len(stub.find("chat.postMessage", lambda c: c.get("channel") == channel)) == 2


def test_retried_delivery_answers_once(slack, stub):
    channel, user = unique("C"), unique("U")
    event = mention("how do I deploy to production?", user=user, channel=channel)
    first, event_id = slack.event(event)
    again, _ = slack.event(event, event_id=event_id, retry=1)
    third, _ = slack.event(event, event_id=event_id, retry=2)
    assert first.status_code == again.status_code == third.status_code == 200
    stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel)
    time.sleep(0.5)
    assert len(stub.find("chat.postMessage", lambda c: c.get("channel") == channel)) == 1


def test_bad_or_stale_signature_is_refused_and_changes_nothing(slack, stub):
    channel, user = unique("C"), unique("U")
    event = mention("how do I connect to the VPN?", user=user, channel=channel)
    bad = SlackClient(slack.url.rsplit("/slack", 1)[0], secret="wrong-secret")
    response, _ = bad.event(event)
    assert response.status_code == 401
    stale, _ = slack.event(event, timestamp=int(time.time()) - 600)
    assert stale.status_code == 401
    unsigned, _ = slack.event(event, signed=False)
    assert unsigned.status_code == 401
    time.sleep(0.5)
    assert not stub.find("chat.postMessage", lambda c: c.get("channel") == channel)


def test_long_answer_fits_slack_limits():
    from retrieval.answer import Answer
    from retrieval.types import Hit

    hits = [Hit(f"d{i}", "T<itle> " * 50, f"https://x.test/{i}?a=1&b=|>", 0.9, "p") for i in range(30)]
    answer = Answer("q", "word & <!channel> " * 2000, hits, False, 3)
    text, blocks = kit.answer_message(answer, 7, question="<!here> " * 1000)
    assert len(text) <= 40000 and len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
    assert "<!channel>" not in json.dumps(blocks) and "<!here>" not in json.dumps(blocks)
    assert "|>" not in json.dumps(blocks)
