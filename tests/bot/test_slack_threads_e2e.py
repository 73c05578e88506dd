"""Conversations end to end: the real `askloop serve --http` process over the test handbook,
signed requests, the Web API stand-in.

- chatter, thanks, emoji and messages to others in a thread get no answer; the asker's
  follow-up questions do, read with the thread's topic ("how long is it valid?" after a VPN
  question finds the 90-day validity); a channel set to "mention" answers only mentions;
- an abstention offers "Ask an expert", which mentions the expert group in the thread; the
  expert's reply is offered back to them as a suggestion, becomes a pending correction with its
  provenance, is approved, learned and applied, and then answers a paraphrase of the question;
- a 👎 offers "Ask an expert" to whoever gave it, once;
- the review channel recovers a post Slack refused (`not_in_channel`), and a moderator can list
  what is waiting meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.slack import blocks as kit
from bot.slack import conversation_blocks as talk
from tests.support.conversations import FOLLOW_UPS, HANDBOOK, TOPIC_CHANGES
from tests.support.slack import (
    ASKLOOP,
    BotProcess,
    SlackClient,
    block_action,
    find_action,
    mention,
    message,
    prepare_home,
    reaction,
    unique,
    wait_until,
)
from tests.support.slack_stub import BOT_ID, BOT_USER_ID, SlackStub

pytestmark = pytest.mark.slow

MODERATOR = "UMODERATOR2"
REVIEW_CHANNEL = "CREVIEW02"
EXPERTS = "S0EXPERTS"
MENTION_ONLY = "CMENTIONONLY"
BUSINESS_CARDS = "where do I order business cards?"
EXPERT_REPLY = ("Business cards are ordered by the office manager: post your name and job title in "
                "#office and they arrive within a week.")


@pytest.fixture(scope="module")
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, embedder: Any, stub: SlackStub) -> Iterator[BotProcess]:
    home = tmp_path_factory.mktemp("slack-threads") / "home"
    prepare_home(home, HANDBOOK, embedder)
    process = BotProcess(home, stub, env={
        "ASKLOOP_MODERATORS": MODERATOR,
        "ASKLOOP_REVIEW_CHANNEL": REVIEW_CHANNEL,
        "ASKLOOP_EXPERT_GROUP": EXPERTS,
        "ASKLOOP_SLACK_CHANNEL_MODES": f"{MENTION_ONLY}=mention",
        "ASKLOOP_TUNING_CACHE_SECONDS": "0",
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

    s = FeedbackStore(f"sqlite:///{bot.home}/askloop.db")  # type: ignore[attr-defined]
    yield s
    s.close()


def posts(stub: SlackStub, channel: str) -> list[Any]:
    return stub.find("chat.postMessage", lambda c: c.get("channel") == channel)


def ask(slack: SlackClient, stub: SlackStub, question: str, channel: str, user: str) -> tuple[Any, dict[str, Any]]:
    """Mention the bot; the answer's chat.postMessage call (with its ts) and the mention."""
    event = mention(question, user=user, channel=channel)
    assert slack.event(event)[0].status_code == 200
    call = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel
                         and c.get("thread_ts") == event["ts"])[0]
    return with_ts(stub, call), event


def with_ts(stub: SlackStub, call: Any) -> Any:
    """The call, with the ts Slack gave its message (what reactions and buttons refer to)."""
    call.params["ts"] = next(ts for (ch, ts), m in list(stub.messages.items())
                             if ch == call["channel"] and m.get("blocks") == call.get("blocks"))
    return call


def reply(slack: SlackClient, text: str, *, user: str, channel: str, thread_ts: str, parent: str) -> dict[str, Any]:
    """A message in a thread, as Slack delivers it (with the thread's author)."""
    event = message(text, user=user, channel=channel, thread_ts=thread_ts, parent_user_id=parent)
    assert slack.event(event)[0].status_code == 200
    return event


def answer_to(stub: SlackStub, channel: str, thread_ts: str, count: int) -> Any:
    """The `count`-th message the bot posted in a thread."""
    return with_ts(stub, stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel
                                       and c.get("thread_ts") == thread_ts, count=count)[count - 1])


def press(slack: SlackClient, call: Any, action_id: str, user: str, *, response_url: str | None = None,
          ephemeral: bool = False) -> None:
    element = find_action(call["blocks"], action_id)
    action = {"action_id": action_id, "block_id": "b", "type": element["type"], "value": element["value"]}
    channel = call["channel"]
    container = {"type": "message", "message_ts": call.get("ts") or call.get("message_ts"),
                 "channel_id": channel, "is_ephemeral": ephemeral}
    msg = None if ephemeral else {"type": "message", "ts": call.get("ts"), "thread_ts": call.get("thread_ts"),
                                  "blocks": call["blocks"], "user": BOT_USER_ID, "bot_id": BOT_ID}
    response = slack.interactive(block_action(action, user=user, channel=channel, message_ts=container["message_ts"],
                                              message=msg, response_url=response_url, container=container))
    assert response.status_code == 200


def ephemeral_to(stub: SlackStub, user: str, where: Any = lambda c: True) -> Any:
    return stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == user and where(c))[-1]


# -- when to answer -------------------------------------------------------------------------------


def test_chatter_and_messages_to_others_are_ignored_and_the_askers_follow_up_answered(slack, stub, bot, store):
    channel, asker, ana = unique("C"), unique("U"), unique("U")
    first, event = ask(slack, stub, "how do I connect to the VPN?", channel, asker)
    root = event["ts"]
    ignored = [
        (asker, "thanks, that worked!"),
        (asker, "👍🙏"),
        (asker, f"<@{ana}> are you coming to lunch?"),
        (asker, "@ana are you coming to lunch?"),
        (ana, "which client did you install?"),  # a teammate's question is for the asker
        (ana, "yes, lunch at 12 :pizza:"),
        (asker, "I tried that and it still fails"),
        (asker, "<!here> is the portal slow for everyone?"),
    ]
    for user, text in ignored:
        reply(slack, text, user=user, channel=channel, thread_ts=root, parent=asker)
    follow_up = reply(slack, "how long is it valid?", user=asker, channel=channel, thread_ts=root, parent=asker)
    answer = answer_to(stub, channel, root, 2)
    assert "expire after 90 days" in answer.blob()
    assert "in this thread: how do I connect to the VPN?" in answer.blob()
    time.sleep(1.0)  # every ignored message was delivered before the follow-up
    assert len(posts(stub, channel)) == 2
    assert "Traceback" not in bot.log()
    # the follow-up wore 👀 while it was answered
    assert stub.find("reactions.add", lambda c: c.get("timestamp") == follow_up["ts"] and c.get("name") == "eyes")
    wait_until(lambda: stub.find("reactions.remove", lambda c: c.get("timestamp") == follow_up["ts"]))
    record = wait_until(lambda: store.answers.for_message(channel, answer["ts"]))
    assert (record.asked, record.question) == ("how long is it valid?", "how do I connect to the VPN? how long is it valid?")
    assert record.context_answer_id == store.answers.for_message(channel, first["ts"]).id


@pytest.mark.parametrize("topic, follow_up, phrase", FOLLOW_UPS)
def test_context_dependent_follow_ups_are_answered_from_the_threads_topic(slack, stub, topic, follow_up, phrase):
    channel, asker = unique("C"), unique("U")
    _, event = ask(slack, stub, topic, channel, asker)
    reply(slack, follow_up, user=asker, channel=channel, thread_ts=event["ts"], parent=asker)
    answer = answer_to(stub, channel, event["ts"], 2)
    assert phrase in answer.blob() and "not confident" not in answer.blob()


def test_a_new_question_in_the_thread_is_answered_on_its_own_topic(slack, stub, store):
    for topic, follow_up, document in TOPIC_CHANGES:
        channel, asker = unique("C"), unique("U")
        _, event = ask(slack, stub, topic, channel, asker)
        reply(slack, follow_up, user=asker, channel=channel, thread_ts=event["ts"], parent=asker)
        answer = answer_to(stub, channel, event["ts"], 2)
        record = wait_until(lambda: store.answers.for_message(channel, answer["ts"]))
        assert record.shown[0].doc_id.endswith(document) and record.question == follow_up
        assert "in this thread" not in answer.blob()


def test_a_mention_only_channel_answers_only_mentions_with_the_thread_as_context(slack, stub):
    asker = unique("U")
    _, event = ask(slack, stub, "how do I connect to the VPN?", MENTION_ONLY, asker)
    root = event["ts"]
    reply(slack, "how long is it valid?", user=asker, channel=MENTION_ONLY, thread_ts=root, parent=asker)
    time.sleep(1.0)
    assert len(stub.find("chat.postMessage", lambda c: c.get("thread_ts") == root)) == 1
    slack.event(mention("how long is it valid?", user=unique("U"), channel=MENTION_ONLY, thread_ts=root))
    answer = answer_to(stub, MENTION_ONLY, root, 2)
    assert "expire after 90 days" in answer.blob()


def test_no_ask_an_expert_in_a_direct_message(slack, stub):
    """Nobody else reads a direct message: the expert group could not see the question."""
    direct = message(BUSINESS_CARDS, user=unique("U"), channel=unique("D"), channel_type="im")
    slack.event(direct)
    (answer,) = stub.wait_for("chat.postMessage", lambda c: c.get("thread_ts") == direct["ts"])
    assert "not confident" in answer.blob() and talk.ASK_EXPERT not in answer.blob()


def test_a_mention_that_only_thanks_is_not_answered(slack, stub):
    channel, asker = unique("C"), unique("U")
    _, event = ask(slack, stub, "how do I submit expenses?", channel, asker)
    slack.event(mention("thanks!", user=asker, channel=channel, thread_ts=event["ts"]))
    slack.event(message("thx 🙏", user=asker, channel=unique("D"), channel_type="im"))
    direct = message("how do I request holidays?", user=asker, channel=unique("D"), channel_type="im")
    slack.event(direct)
    stub.wait_for("chat.postMessage", lambda c: c.get("thread_ts") == direct["ts"])
    time.sleep(0.5)
    assert len(posts(stub, channel)) == 1


# -- learning from the thread ---------------------------------------------------------------------


def learn(bot: BotProcess) -> dict[str, Any]:
    """`askloop learn` (FeedbackLoop.learn) as a person runs it, against the bot's data."""
    done = subprocess.run([str(ASKLOOP), "learn", "--user", MODERATOR, "--json"], env=bot.env, cwd=bot.cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def review_post(stub: SlackStub, text: str) -> Any:
    call = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == REVIEW_CHANNEL and
                         text in c.get("text", ""))[0]
    return with_ts(stub, call)


def test_an_experts_reply_becomes_a_correction_and_then_the_answer(slack, stub, store, bot):
    channel, asker, expert, teammate = unique("C"), unique("U"), unique("U"), unique("U")
    stub.usergroups[EXPERTS] = [expert]
    answer, event = ask(slack, stub, BUSINESS_CARDS, channel, asker)
    root = event["ts"]
    assert "not confident" in answer.blob()  # the handbook has no page on it
    # "Ask an expert" mentions the group in the thread, once
    press(slack, answer, talk.ASK_EXPERT, asker)
    (request,) = stub.wait_for("chat.postMessage", lambda c: f"<!subteam^{EXPERTS}>" in c.blob())
    assert request["thread_ts"] == root and BUSINESS_CARDS in request.blob()
    press(slack, answer, talk.ASK_EXPERT, teammate)
    ephemeral_to(stub, teammate, lambda c: "already been asked" in c["text"])
    # the expert replies: the offer goes to them only, once
    reply(slack, f"<@{asker}> {EXPERT_REPLY}", user=expert, channel=channel, thread_ts=root, parent=asker)
    offer = ephemeral_to(stub, expert, lambda c: "Suggest it as the answer" in c.blob())
    assert offer["thread_ts"] == root and offer["channel"] == channel
    reply(slack, "and you can ask for a rush order too, it takes two days then", user=expert, channel=channel,
          thread_ts=root, parent=asker)
    reply(slack, "thanks!", user=asker, channel=channel, thread_ts=root, parent=asker)
    time.sleep(1.0)
    assert len(stub.find("chat.postEphemeral", lambda c: c.get("user") == expert)) == 1
    assert len(posts(stub, channel)) == 2  # the answer and the request to the experts
    # only the person who wrote the reply can suggest it
    press(slack, offer, talk.SUGGEST_REPLY, teammate, ephemeral=True, response_url=stub.response_url("intruder"))
    ephemeral_to(stub, teammate, lambda c: "Only the person who wrote" in c["text"])
    name = unique("offer")
    press(slack, offer, talk.SUGGEST_REPLY, expert, ephemeral=True, response_url=stub.response_url(name))
    answer_id = store.answers.for_message(channel, answer["ts"]).id
    (correction,) = wait_until(lambda: store.corrections.find(answer_id=answer_id))
    assert correction.status == "pending" and correction.user == expert
    assert correction.text == f"@{asker} {EXPERT_REPLY}"
    assert correction.origin == "slack_thread" and correction.permalink.startswith("https://stub.slack.test/archives/")
    thanks = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    assert f"correction #{correction.id}" in thanks["text"] and thanks["replace_original"] in (True, "true")
    # a replayed press suggests nothing more
    press(slack, offer, talk.SUGGEST_REPLY, expert, ephemeral=True, response_url=stub.response_url(name + "b"))
    stub.wait_for("response_url", lambda c: c.get("_name") == name + "b")
    assert len(store.corrections.find(answer_id=answer_id)) == 1
    # reviewed like any other, with where it came from
    review = review_post(stub, f"Correction #{correction.id} ")
    assert "Suggested from" in review.blob() and correction.permalink in review.blob()
    press(slack, review, kit.REVIEW_APPROVE, MODERATOR)
    wait_until(lambda: store.corrections.get(correction.id).status == "approved")
    # learned, through the gate, and applied by a moderator
    learned = learn(bot)
    proposal_id = learned["proposal"]
    assert learned["new"] and learned["status"] == "evaluated", learned  # it passed the gate
    # (the review channel may have had it while it was being evaluated: the list is current)
    name = unique("queue")
    slack.command("review", user=MODERATOR, channel=channel, response_url=stub.response_url(name))
    listing = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    value = json.dumps({"kind": "proposal", "id": proposal_id})
    assert any(e.get("value") == value and e["action_id"] == kit.REVIEW_APPROVE
               for b in listing["blocks"] for e in b.get("elements", []))
    approve = block_action({"action_id": kit.REVIEW_APPROVE, "value": value, "type": "button"}, user=MODERATOR,
                           channel=channel, message_ts=None, response_url=stub.response_url(name + "a"),
                           container={"type": "message", "message_ts": "1.2", "channel_id": channel,
                                      "is_ephemeral": True})
    assert slack.interactive(approve).status_code == 200
    wait_until(lambda: store.proposals.get(proposal_id).status == "applied")
    # the team's answer now answers a paraphrase of the question, to anyone
    paraphrase, _ = ask(slack, stub, "how can I get business cards?", unique("C"), unique("U"))
    assert "office manager" in paraphrase.blob() and "not confident" not in paraphrase.blob()
    assert f"correction #{correction.id}" in paraphrase.blob()


def test_a_downvote_offers_ask_an_expert_to_its_giver_once(slack, stub, store):
    channel, asker, voter, teammate = unique("C"), unique("U"), unique("U"), unique("U")
    answer, event = ask(slack, stub, "how do I get a new laptop?", channel, asker)
    answer_id = wait_until(lambda: store.answers.for_message(channel, answer["ts"])).id
    slack.event(reaction("-1", user=voter, channel=channel, ts=answer["ts"]))
    offer = ephemeral_to(stub, voter)
    assert offer["thread_ts"] == event["ts"]
    assert find_action(offer["blocks"], talk.ASK_EXPERT)["value"] == str(answer_id)
    slack.event(reaction("-1", user=voter, channel=channel, ts=answer["ts"], added=False))
    slack.event(reaction("thumbsdown", user=voter, channel=channel, ts=answer["ts"]))
    wait_until(lambda: {v.user: v.value for v in store.votes.for_answer(answer_id)}.get(voter) == -1)
    time.sleep(0.5)
    assert len(stub.find("chat.postEphemeral", lambda c: c.get("user") == voter)) == 1
    # 👎 pressed as a button: the confirmation offers it too
    other = unique("U")
    down = find_action(answer["blocks"], kit.FEEDBACK_BUTTONS)["negative_button"]["value"]
    action = {"action_id": kit.FEEDBACK_BUTTONS, "block_id": "b", "type": "feedback_buttons", "value": down}
    slack.interactive(block_action(action, user=other, channel=channel, message_ts=answer["ts"],
                                   message={"type": "message", "ts": answer["ts"], "thread_ts": event["ts"],
                                            "blocks": answer["blocks"], "user": BOT_USER_ID, "bot_id": BOT_ID}))
    confirmed = ephemeral_to(stub, other)
    assert "👎" in confirmed["text"] and "Ask the experts" in confirmed["text"]
    assert find_action(confirmed["blocks"], talk.ASK_EXPERT)["value"] == str(answer_id)
    # after the 👎, a teammate's answer-like reply is offered back to them
    reply(slack, "You also need to return the old one within two weeks, wiped.", user=teammate, channel=channel,
          thread_ts=event["ts"], parent=asker)
    offer = ephemeral_to(stub, teammate, lambda c: "Suggest it as the answer" in c.blob())
    name = unique("dismiss")  # "No thanks": the offer goes away, nothing is suggested
    press(slack, offer, talk.DISMISS_OFFER, teammate, ephemeral=True, response_url=stub.response_url(name))
    gone = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    assert gone["delete_original"] in (True, "true") and not store.corrections.find(answer_id=answer_id)
    # and the asker's own remark is not
    reply(slack, "I already opened a ticket with IT about it", user=asker, channel=channel,
          thread_ts=event["ts"], parent=asker)
    time.sleep(0.5)
    assert not stub.find("chat.postEphemeral", lambda c: c.get("user") == asker)


# -- the review channel ---------------------------------------------------------------------------


def test_the_review_channel_recovers_a_failed_post(slack, stub, store):
    channel, asker, expert = unique("C"), unique("U"), unique("U")
    answer, event = ask(slack, stub, "can I bring my dog to the office?", channel, asker)
    stub.not_in_channel.add(REVIEW_CHANNEL)  # someone removed the bot from the review channel
    try:
        reply(slack, "Dogs are welcome on Fridays if they are friendly and stay on a leash.", user=expert,
              channel=channel, thread_ts=event["ts"], parent=asker)
        offer = ephemeral_to(stub, expert)
        press(slack, offer, talk.SUGGEST_REPLY, expert, ephemeral=True, response_url=stub.response_url(unique("r")))
        answer_id = wait_until(lambda: store.answers.for_message(channel, answer["ts"])).id
        (correction,) = wait_until(lambda: store.corrections.find(answer_id=answer_id))
        heading = f"Correction #{correction.id} "
        stub.wait_for("chat.postMessage:not_in_channel", lambda c: c.get("channel") == REVIEW_CHANNEL
                      and heading in c.get("text", ""))
        # meanwhile a moderator can list what is waiting
        name = unique("queue")
        slack.command("review", user=MODERATOR, channel=unique("C"), response_url=stub.response_url(name))
        queue = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
        assert f"Correction #{correction.id}" in queue.blob()
        assert not stub.find("chat.postMessage", lambda c: c.get("channel") == REVIEW_CHANNEL
                             and heading in c.get("text", ""))
    finally:
        stub.not_in_channel.discard(REVIEW_CHANNEL)  # the bot is invited back
    posted = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == REVIEW_CHANNEL
                           and heading in c.get("text", ""), timeout=60)
    assert len(posted) == 1 and "Suggested from" in posted[0].blob()
    time.sleep(1.0)
    assert len(stub.find("chat.postMessage", lambda c: c.get("channel") == REVIEW_CHANNEL
                         and heading in c.get("text", ""))) == 1
