"""End to end: the real `askloop serve --http` process, signed requests, the Web API stand-in.

One bot process serves the whole module; every test uses its own channel and user ids, so
tests do not see each other's answers or votes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.slack import blocks as kit
from tests.conftest import TINY_CORPUS
from tests.support.slack_stub import BOT_ID, BOT_USER_ID, SlackStub
from tests.support.slack import (
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

    s = FeedbackStore(f"sqlite:///{bot.home}/askloop.db")  # type: ignore[attr-defined]
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
    record = wait_until(lambda: store.answers.for_message(channel, answer_ts(stub, call)))
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


def test_follow_up_where_only_slack_shows_the_bot_is_answered_after_asking_slack(slack, stub, store):
    """The store knows the threads askloop answered; for one it does not know (here the bot's
    message exists only in Slack, like a notice or an answer never linked) Slack is asked."""
    from slack_sdk import WebClient

    channel, user = unique("C"), unique("U")
    root = f"{time.time():.6f}"
    WebClient(token="xoxb-other-process", base_url=stub.url).chat_postMessage(
        channel=channel, thread_ts=root, text="Ask me a question after the mention")
    assert store.answers.answered_in_thread(channel, root) is False
    slack.event(message("how do I request holidays?", user=user, channel=channel, thread_ts=root))
    stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                  "Requesting holidays" in json.dumps(c.get("blocks")))
    assert len(stub.find("conversations.replies", lambda c: c.get("channel") == channel)) == 1
    assert wait_until(lambda: store.answers.answered_in_thread(channel, root)) is True


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


# -- votes --------------------------------------------------------------------------------------


def votes(store: Any, answer_id: int) -> dict[str, int]:
    return {v.user: v.value for v in store.votes.for_answer(answer_id)}


def test_reactions_vote_and_unvote_and_other_messages_are_ignored(slack, stub, store):
    channel, asker, voter = unique("C"), unique("U"), unique("U")
    call, event = ask(slack, stub, "how do I submit expenses?", channel, asker)
    ts = answer_ts(stub, call)
    answer_id = wait_until(lambda: store.answers.for_message(channel, ts)).id
    slack.event(reaction("+1", user=voter, channel=channel, ts=ts))
    wait_until(lambda: votes(store, answer_id).get(voter) == 1)
    slack.event(reaction("thumbsdown", user=voter, channel=channel, ts=ts))
    wait_until(lambda: votes(store, answer_id).get(voter) == -1)
    # removing the 👍 the user no longer holds changes nothing; removing the 👎 withdraws it
    slack.event(reaction("+1", user=voter, channel=channel, ts=ts, added=False))
    time.sleep(0.3)
    assert votes(store, answer_id).get(voter) == -1
    slack.event(reaction("-1", user=voter, channel=channel, ts=ts, added=False))
    wait_until(lambda: voter not in votes(store, answer_id))
    # other reactions, and reactions on the user's own question, are no votes
    slack.event(reaction("tada", user=voter, channel=channel, ts=ts))
    slack.event(reaction("+1::skin-tone-3", user=asker, channel=channel, ts=event["ts"]))
    slack.event(reaction("+1::skin-tone-3", user=asker, channel=channel, ts=ts))
    wait_until(lambda: votes(store, answer_id).get(asker) == 1)
    time.sleep(0.3)
    assert votes(store, answer_id) == {asker: 1}


def test_retried_reaction_votes_once(slack, stub, store):
    channel, voter = unique("C"), unique("U")
    call, _ = ask(slack, stub, "how do I request holidays?", channel, unique("U"))
    ts = answer_ts(stub, call)
    answer_id = wait_until(lambda: store.answers.for_message(channel, ts)).id
    event = reaction("+1", user=voter, channel=channel, ts=ts)
    _, event_id = slack.event(event)
    wait_until(lambda: votes(store, answer_id).get(voter) == 1)
    slack.event(reaction("-1", user=voter, channel=channel, ts=ts, added=False))  # unrelated
    removal = reaction("+1", user=voter, channel=channel, ts=ts, added=False)
    _, removal_id = slack.event(removal)
    wait_until(lambda: voter not in votes(store, answer_id))
    # Slack retries the original 👍 delivery: it must not come back as a second vote
    slack.event(event, event_id=event_id, retry=1)
    slack.event(removal, event_id=removal_id, retry=1)
    time.sleep(0.5)
    assert voter not in votes(store, answer_id)
    history = store.votes.history(answer_id=answer_id, user=voter)
    assert [h["action"] for h in history].count("cast") == 1


def press(slack: SlackClient, call: Any, action_id: str, user: str, value: str | None = None) -> Any:
    element = find_action(call["blocks"], action_id)
    action: dict[str, Any] = {"action_id": action_id, "block_id": "b", "type": element["type"]}
    if element["type"] == "feedback_buttons":
        action["value"] = value
    else:
        action["value"] = element["value"]
    msg = {"type": "message", "ts": call.get("ts"), "thread_ts": call.get("thread_ts"),
           "blocks": call["blocks"], "user": BOT_USER_ID, "bot_id": BOT_ID}
    response = slack.interactive(block_action(action, user=user, channel=call["channel"],
                                              message_ts=call.get("ts"), message=msg))
    assert response.status_code == 200
    return response


def test_buttons_vote_toggle_and_confirm_ephemerally(slack, stub, store):
    channel, voter = unique("C"), unique("U")
    call, _ = ask(slack, stub, "when is the on-call handover?", channel, unique("U"))
    answer_id = answer_id_of(call)
    feedback = find_action(call["blocks"], kit.FEEDBACK_BUTTONS)
    up, down = feedback["positive_button"]["value"], feedback["negative_button"]["value"]
    press(slack, call, kit.FEEDBACK_BUTTONS, voter, up)
    wait_until(lambda: votes(store, answer_id).get(voter) == 1)
    confirm = stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == voter)[0]
    assert confirm["channel"] == channel and "👍" in confirm["text"]
    press(slack, call, kit.FEEDBACK_BUTTONS, voter, down)
    wait_until(lambda: votes(store, answer_id).get(voter) == -1)
    press(slack, call, kit.FEEDBACK_BUTTONS, voter, down)  # pressed again: withdrawn
    wait_until(lambda: voter not in votes(store, answer_id))
    stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == voter and "Removed" in c["text"])


def test_plain_buttons_when_slack_rejects_native_feedback(slack, stub, store):
    channel, voter = unique("C"), unique("U")
    stub.reject_native_feedback = True
    try:
        event = mention("how do I get a new laptop?", user=unique("U"), channel=channel)
        slack.event(event)
        (call,) = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                                not any(b["type"] == "context_actions" for b in c["blocks"]))
    finally:
        stub.reject_native_feedback = False
    press(slack, call, kit.VOTE_DOWN, voter)
    answer_id = answer_id_of(call)
    wait_until(lambda: votes(store, answer_id).get(voter) == -1)
    # The bot links the message to its answer just after posting it; the button's vote carries
    # the answer id and can be stored first.
    wait_until(lambda: store.answers.for_message(channel, answer_ts(stub, call)) is not None)
    assert store.answers.for_message(channel, answer_ts(stub, call)).id == answer_id


# -- corrections and moderation -----------------------------------------------------------------


def filled_form(slack, stub, call, user, action_id, callback_id, key, value) -> Any:  # type: ignore[no-untyped-def]
    """Press a button that opens a form: it opens at once ("Loading…") and is then filled with
    `views.update`; returns that update (its `view_id` is the opened form's)."""
    def mine(c: Any) -> bool:
        view = c["view"]
        return view.get("callback_id") == callback_id and "private_metadata" in view and \
            json.loads(view["private_metadata"]).get(key) == value

    before = len(stub.find("views.update", mine))
    press(slack, call, action_id, user)
    filled = stub.wait_for("views.update", mine, count=before + 1)[-1]
    opened = [c for c in stub.find("views.open") if c["view"]["callback_id"] == callback_id]
    assert opened and "Loading" in opened[-1].blob()  # opened before anything was read
    return filled


def suggest(slack, stub, call, user, text=None, source=None) -> Any:
    filled = filled_form(slack, stub, call, user, kit.SUGGEST, kit.CORRECTION_MODAL, "answer_id", answer_id_of(call))
    values = {kit.TEXT_BLOCK: {kit.TEXT_INPUT: {"type": "plain_text_input", "value": text}},
              kit.SOURCE_BLOCK: {kit.SOURCE_INPUT: {"type": "plain_text_input", "value": source}}}
    return slack.interactive(view_submission(kit.CORRECTION_MODAL, filled["view"]["private_metadata"],
                                             values, user=user, view_id=filled["view_id"]))


def test_correction_modal_validation_and_pending_correction(slack, stub, store):
    channel, user = unique("C"), unique("U")
    call, _ = ask(slack, stub, "how do I deploy on a Friday?", channel, unique("U"))
    answer_id = answer_id_of(call)
    empty = suggest(slack, stub, call, user)
    assert empty.status_code == 200
    assert empty.json()["response_action"] == "errors" and kit.TEXT_BLOCK in empty.json()["errors"]
    bad = suggest(slack, stub, call, user, text="fine", source="ftp://files/x")
    assert bad.json()["response_action"] == "errors" and kit.SOURCE_BLOCK in bad.json()["errors"]
    assert not store.corrections.find(answer_id=answer_id)
    ok = suggest(slack, stub, call, user, text="Deploys on Fridays need a lead's OK.",
                 source="https://wiki.test/deploy")
    assert ok.status_code == 200 and not ok.content.strip()  # the modal closes
    (correction,) = wait_until(lambda: store.corrections.find(answer_id=answer_id))
    assert correction.status == "pending" and correction.user == user
    assert correction.source_ref == "https://wiki.test/deploy"
    stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == user and "waiting" in c["text"])
    review = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == REVIEW_CHANNEL and
                           f"Correction #{correction.id} " in c.get("text", ""))[0]
    blob = review.blob()
    assert "how do I deploy on a Friday?" in blob and "Deploys on Fridays need" in blob
    for action_id in (kit.REVIEW_APPROVE, kit.REVIEW_REJECT, kit.REVIEW_EDIT):
        find_action(review["blocks"], action_id)


def review_post(stub: SlackStub, text: str) -> Any:
    call = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == REVIEW_CHANNEL and
                         text in c.get("text", ""))[0]
    ts = next(ts for (ch, ts), m in list(stub.messages.items())
              if ch == REVIEW_CHANNEL and m.get("text") == call["text"])
    call.params["ts"] = ts
    return call


def test_non_moderator_is_refused_and_moderator_approves_correction(slack, stub, store):
    channel, user = unique("C"), unique("U")
    call, _ = ask(slack, stub, "how long do I have to return my old laptop?", channel, unique("U"))
    suggest(slack, stub, call, user, text="Within 14 days.", source="doc:laptop")
    (correction,) = wait_until(lambda: store.corrections.find(answer_id=answer_id_of(call)))
    review = review_post(stub, f"Correction #{correction.id} ")
    press(slack, review, kit.REVIEW_APPROVE, user)  # the suggester is no moderator
    stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == user and "Only moderators" in c["text"])
    time.sleep(0.3)
    assert store.corrections.get(correction.id).status == "pending"
    assert not stub.find("chat.update", lambda c: c.get("ts") == review["ts"])
    press(slack, review, kit.REVIEW_APPROVE, GROUP_MODERATOR)  # a member of the moderator group
    wait_until(lambda: store.corrections.get(correction.id).status == "approved")
    assert store.corrections.get(correction.id).decided_by == GROUP_MODERATOR
    (update,) = stub.wait_for("chat.update", lambda c: c.get("ts") == review["ts"])
    blob = update.blob()
    assert "Approved" in blob and GROUP_MODERATOR in blob and "<!date^" in blob
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert stub.find("usergroups.users.list")


def test_moderator_edits_then_approves(slack, stub, store):
    channel = unique("C")
    call, _ = ask(slack, stub, "where are holidays requested?", channel, unique("U"))
    suggest(slack, stub, call, unique("U"), text="In the HR portl.")
    (correction,) = wait_until(lambda: store.corrections.find(answer_id=answer_id_of(call)))
    review = review_post(stub, f"Correction #{correction.id} ")
    filled = filled_form(slack, stub, review, MODERATOR, kit.REVIEW_EDIT, kit.EDIT_MODAL, "correction_id",
                         correction.id)
    values = {kit.TEXT_BLOCK: {kit.TEXT_INPUT: {"value": "In the HR portal, two weeks ahead."}},
              kit.SOURCE_BLOCK: {kit.SOURCE_INPUT: {"value": "doc:holidays"}}}
    response = slack.interactive(view_submission(kit.EDIT_MODAL, filled["view"]["private_metadata"],
                                                 values, user=MODERATOR, view_id=filled["view_id"]))
    assert response.status_code == 200
    approved = wait_until(lambda: (c := store.corrections.get(correction.id)).status == "approved" and c)
    assert approved.text == "In the HR portal, two weeks ahead." and approved.original_text == "In the HR portl."
    update = stub.wait_for("chat.update", lambda c: c.get("ts") == review["ts"])[0]
    assert "Edited and approved" in update.blob()


def gate_figures(before: float, after: float, passed: bool = True) -> dict[str, Any]:
    """An evaluation as the gate records it."""
    metrics = lambda v: {"ndcg@10": v, "mrr@10": v, "recall@10": v, "hit@1": v}  # noqa: E731
    worse = [] if passed else [{"golden_id": 1, "question": "vpn?", "before": before, "after": after}]
    return {"passed": passed, "tolerance": 0.05, "compared_with": "base index", "seconds": 0.1,
            "golden": {"count": 3, "before": metrics(before), "after": metrics(after), "better": 1, "worse": worse},
            "recent": {"count": 10, "top_changed": 2, "top_changed_share": 0.2}}


def test_proposal_posted_for_review_and_applied_by_moderator(slack, stub, store):
    proposal = store.proposals.create(summary="Boost the VPN guide for network questions",
                                     diff={"boost": {"vpn": 0.05}}, payload={}, created_by="learner")
    store.proposals.record_evaluation(proposal.id, gate_figures(0.61, 0.66), True)
    review = review_post(stub, f"Proposal #{proposal.id} ")
    assert "PASSED" in review.blob() and "nDCG@10 0.610 → 0.660" in review.blob()
    assert find_action(review["blocks"], kit.REVIEW_APPROVE)["text"]["text"] == "Approve and apply"
    outsider = unique("U")
    press(slack, review, kit.REVIEW_APPROVE, outsider)
    stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == outsider)
    assert store.proposals.get(proposal.id).status == "evaluated"
    press(slack, review, kit.REVIEW_APPROVE, MODERATOR)
    applied = wait_until(lambda: (p := store.proposals.get(proposal.id)).status == "applied" and p)
    assert store.proposals.active_version_number() == applied.applied_version
    update = stub.wait_for("chat.update", lambda c: c.get("ts") == review["ts"])[0]
    assert f"applied as version {applied.applied_version}" in update.blob()
    # the App Home of a moderator lists the version with the queue and stats
    slack.event({"type": "app_home_opened", "user": MODERATOR, "channel": "D1", "tab": "home",
                 "event_ts": f"{time.time():.6f}"})
    home = stub.wait_for("views.publish", lambda c: c.get("user_id") == MODERATOR)[-1]
    assert f"Version {applied.applied_version}" in home.blob() and "satisfaction" in home.blob()
    assert "Knowledge gaps" in home.blob() and "knowledge gaps (30d)" in home.blob()


# -- Slack's realities and the slash command ----------------------------------------------------


def test_rate_limited_post_is_retried_after_retry_after(slack, stub, store):
    channel = unique("C")
    stub.rate_limit("chat.postMessage", times=1, retry_after=1, where=lambda p: p.get("channel") == channel)
    event = mention("how do I connect to the VPN?", user=unique("U"), channel=channel)
    slack.event(event)
    (limited,) = stub.wait_for("chat.postMessage:429", lambda c: c.get("channel") == channel)
    (posted,) = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel)
    assert posted.at - limited.at >= 0.95  # waited for Retry-After
    ts = answer_ts(stub, posted)
    wait_until(lambda: store.answers.for_message(channel, ts))


def test_slash_command_question_stats_and_review(slack, stub, store):
    channel, user = unique("C"), unique("U")
    response = slack.command("how do I submit expenses?", user=user, channel=channel,
                             response_url=stub.response_url("q"))
    assert response.status_code == 200
    question = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                             "asked:" in c.get("text", ""))[0]
    assert f"<@{user}>" in question["text"]
    answer = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                           c.get("thread_ts") is not None)[0]
    assert "finance tool" in answer.blob()
    record = wait_until(lambda: store.answers.for_message(channel, answer_ts(stub, answer)))
    assert record.origin == "slack_command" and record.asker == user

    name = unique("stats")
    slack.command("stats", user=user, channel=channel, response_url=stub.response_url(name))
    stats = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    assert "satisfaction" in stats["text"] and "answer threshold" in stats["text"]

    refused = slack.command("review", user=user, channel=channel, response_url=stub.response_url("refused"))
    assert refused.status_code == 200 and not refused.text  # acknowledged at once; the answer follows
    no = stub.wait_for("response_url", lambda c: c.get("_name") == "refused")[0]
    assert "Only moderators" in no["text"] and no["response_type"] == "ephemeral"
    name = unique("review")
    slack.command("review", user=MODERATOR, channel=channel, response_url=stub.response_url(name))
    queue = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    assert queue["response_type"] == "ephemeral" and "review" in queue["text"]

    helped = slack.command("", user=user, channel=channel, response_url=stub.response_url("h"))
    assert "/askloop stats" in helped.text


def test_unknown_slash_commands_are_refused_and_never_asked(slack, stub, store):
    channel, user = unique("C"), unique("U")
    answers = store.reports.stats().windows[-1].answers
    for text, closest in (("/frobnicate", None), ("+5", None), ("stat", "stats"), ("reveiw", "review")):
        response = slack.command(text, user=user, channel=channel, response_url=stub.response_url(unique("u")))
        assert response.status_code == 200 and "unknown command" in response.text, text
        if closest:
            assert f"did you mean {closest}?" in response.text
    time.sleep(1.0)
    assert not stub.find("chat.postMessage", lambda c: c.get("channel") == channel)
    assert store.reports.stats().windows[-1].answers == answers  # nothing was recorded as a question


def test_rollback_from_app_home_and_reject(slack, stub, store):
    proposal = store.proposals.create(summary="Another small change", diff={"boost": {}}, payload={},
                                     created_by="learner")
    store.proposals.record_evaluation(proposal.id, gate_figures(0.6, 0.7), True)
    version = store.proposals.approve(proposal.id, MODERATOR)[1]
    assert store.proposals.active_version_number() == version.number
    slack.event({"type": "app_home_opened", "user": MODERATOR, "channel": "D1", "tab": "home",
                 "event_ts": f"{time.time():.6f}"})
    before = len(stub.find("views.publish", lambda c: c.get("user_id") == MODERATOR))
    home = stub.wait_for("views.publish", lambda c: c.get("user_id") == MODERATOR and
                         f"Version {version.number}* (active)" in c.blob())[-1]
    rollback = find_action(home["view"]["blocks"], kit.ROLLBACK)  # the first: an older state
    container = {"type": "view", "view_id": "V1"}
    outsider = unique("U")
    slack.interactive(block_action({"action_id": kit.ROLLBACK, "value": rollback["value"], "type": "button"},
                                   user=outsider, channel=None, message_ts=None, container=container))
    stub.wait_for("chat.postMessage", lambda c: c.get("channel") == outsider and "Only moderators" in c["text"])
    assert store.proposals.active_version_number() == version.number
    slack.interactive(block_action({"action_id": kit.ROLLBACK, "value": "0", "type": "button"},
                                   user=MODERATOR, channel=None, message_ts=None, container=container))
    wait_until(lambda: store.proposals.active_version_number() is None)
    stub.wait_for("views.publish", lambda c: c.get("user_id") == MODERATOR, count=before + 1)
    # a pending proposal rejected from the review channel
    other = store.proposals.create(summary="A bad idea", diff={}, payload={}, created_by="learner")
    store.proposals.record_evaluation(other.id, gate_figures(0.6, 0.1, passed=False), False)
    review = review_post(stub, f"Proposal #{other.id} ")
    assert "Apply anyway" in review.blob()  # a failing proposal needs a confirmed override
    press(slack, review, kit.REVIEW_REJECT, MODERATOR)
    wait_until(lambda: store.proposals.get(other.id).status == "rejected")
    update = stub.wait_for("chat.update", lambda c: c.get("ts") == review["ts"])[0]
    assert "Rejected" in update.blob()


def test_a_failing_proposal_is_applied_only_with_a_confirmed_override_on_every_surface(slack, stub, store):
    proposal = store.proposals.create(summary="Risky change", diff={}, payload={"kind": "none", "risky": 1},
                                      created_by="learner")
    store.proposals.record_evaluation(proposal.id, gate_figures(0.8, 0.5, passed=False), False)
    review = review_post(stub, f"Proposal #{proposal.id} ")
    override = find_action(review["blocks"], kit.REVIEW_OVERRIDE)
    assert override["text"]["text"] == "Apply anyway" and override["confirm"]["confirm"]["text"] == "Apply anyway"
    with pytest.raises(AssertionError):
        find_action(review["blocks"], kit.REVIEW_APPROVE)  # no plain Approve for a failing proposal
    # the same buttons in App Home and in /askloop review
    slack.event({"type": "app_home_opened", "user": MODERATOR, "channel": "D1", "tab": "home",
                 "event_ts": f"{time.time():.6f}"})
    home = stub.wait_for("views.publish", lambda c: c.get("user_id") == MODERATOR and
                         f"Proposal #{proposal.id} (failing)" in c.blob())[-1]
    assert find_action(home["view"]["blocks"], kit.REVIEW_OVERRIDE)["confirm"]
    name = unique("queue")
    slack.command("review", user=MODERATOR, channel=unique("C"), response_url=stub.response_url(name))
    queue = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    assert find_action(queue["blocks"], kit.REVIEW_OVERRIDE)["confirm"]
    # a plain Approve (an old message's button) is refused with what to do instead
    stale = {"action_id": kit.REVIEW_APPROVE, "block_id": "b", "type": "button", "value": override["value"]}
    slack.interactive(block_action(stale, user=MODERATOR, channel=REVIEW_CHANNEL, message_ts=review["ts"],
                                   message={"type": "message", "ts": review["ts"], "blocks": review["blocks"]}))
    stub.wait_for("chat.postEphemeral", lambda c: c.get("user") == MODERATOR and "Apply anyway" in c["text"]
                  and "failed its evaluation" in c["text"])
    assert store.proposals.get(proposal.id).status == "failing"
    press(slack, review, kit.REVIEW_OVERRIDE, MODERATOR)
    applied = wait_until(lambda: (p := store.proposals.get(proposal.id)).status == "applied" and p)
    assert applied.override and store.proposals.active_version_number() == applied.applied_version
    assert [e.actor for e in store.audit.events(action="proposal.approve_override")][-1] == MODERATOR
    update = stub.wait_for("chat.update", lambda c: c.get("ts") == review["ts"])[-1]
    assert "with an override" in update.blob()


def test_healthz_says_ok_when_database_and_knowledge_base_answer(bot):
    import httpx

    response = httpx.get(bot.url + "/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert httpx.get(bot.url + "/nowhere", timeout=5).status_code == 404


def test_review_from_the_slash_command_list(slack, stub, store):
    channel = unique("C")
    call, _ = ask(slack, stub, "what do I attach to expenses?", channel, unique("U"))
    suggest(slack, stub, call, unique("U"), text="A photo of every receipt.")
    (correction,) = wait_until(lambda: store.corrections.find(answer_id=answer_id_of(call)))
    name = unique("review")
    slack.command("review", user=MODERATOR, channel=channel, response_url=stub.response_url(name))
    listing = stub.wait_for("response_url", lambda c: c.get("_name") == name)[0]
    value = json.dumps({"kind": "correction", "id": correction.id})
    assert any(e.get("value") == value for b in listing["blocks"] for e in b.get("elements", []))
    after = unique("after")
    payload = block_action({"action_id": kit.REVIEW_REJECT, "value": value, "type": "button"},
                           user=MODERATOR, channel=channel, message_ts=None,
                           response_url=stub.response_url(after),
                           container={"type": "message", "message_ts": "1.2", "channel_id": channel,
                                      "is_ephemeral": True})
    assert slack.interactive(payload).status_code == 200
    wait_until(lambda: store.corrections.get(correction.id).status == "rejected")
    replaced = stub.wait_for("response_url", lambda c: c.get("_name") == after)[0]
    assert replaced["replace_original"] is True
    assert not any(e.get("value") == value for b in replaced.get("blocks") or []
                   for e in b.get("elements", []))


def test_direct_message_is_answered_once(slack, stub, store):
    channel, user = "D" + unique("M"), unique("U")
    dm = message(f"<@{BOT_USER_ID}> how do I request holidays?", user=user, channel=channel,
                 channel_type="im")
    slack.event(dm)
    slack.event(mention("how do I request holidays?", user=user, channel=channel, ts=dm["ts"]))
    (call,) = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel)
    assert call["thread_ts"] == dm["ts"] and "HR portal" in call.blob()
    time.sleep(0.5)
    assert len(stub.find("chat.postMessage", lambda c: c.get("channel") == channel)) == 1
    record = wait_until(lambda: store.answers.for_message(channel, answer_ts(stub, call)))
    assert record.origin == "slack_dm" and record.question == "how do I request holidays?"


def test_url_verification_challenge(slack):
    body = json.dumps({"token": "legacy", "challenge": "c-123", "type": "url_verification"}).encode()
    response = slack.post(body, "application/json")
    assert response.status_code == 200 and response.json()["challenge"] == "c-123"
    assert slack.post(body, "application/json", signed=False).status_code == 401


# -- what is acknowledged is kept, and processed once ------------------------------------------


def test_a_reaction_while_the_database_is_locked_is_refused_then_kept_when_slack_retries(slack, stub, store, bot):
    """The vote is written before Slack gets its answer: while the database cannot take it the
    request fails (Slack will deliver the event again), and the retry is recorded, once."""
    import sqlite3

    channel, voter = unique("C"), unique("U")
    call, _ = ask(slack, stub, "how do I request holidays?", channel, unique("U"))
    ts = answer_ts(stub, call)
    answer_id = wait_until(lambda: store.answers.for_message(channel, ts)).id
    event = reaction("-1", user=voter, channel=channel, ts=ts)
    holder = sqlite3.connect(f"{bot.home}/askloop.db", timeout=5, isolation_level=None)  # type: ignore[attr-defined]
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        started = time.monotonic()
        refused, event_id = slack.event(event)
        assert refused.status_code == 503 and time.monotonic() - started < 3.0  # within Slack's 3 s
        assert votes(store, answer_id) == {}
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    retried, _ = slack.event(event, event_id=event_id, retry=1)
    assert retried.status_code == 200
    wait_until(lambda: votes(store, answer_id).get(voter) == -1)
    time.sleep(0.3)
    assert [h["action"] for h in store.votes.history(answer_id=answer_id, user=voter)] == ["cast"]


def test_reactions_delivered_out_of_order_leave_the_last_one(slack, stub, store):
    channel, voter = unique("C"), unique("U")
    call, _ = ask(slack, stub, "who carries the pager?", channel, unique("U"))
    ts = answer_ts(stub, call)
    answer_id = wait_until(lambda: store.answers.for_message(channel, ts)).id
    first, second = reaction("-1", user=voter, channel=channel, ts=ts), reaction("+1", user=voter, channel=channel, ts=ts)
    assert float(first["event_ts"]) < float(second["event_ts"])
    assert slack.event(second)[0].status_code == 200  # the later 👍 arrives first
    assert slack.event(first)[0].status_code == 200
    wait_until(lambda: votes(store, answer_id).get(voter) == 1)
    time.sleep(0.3)
    assert votes(store, answer_id) == {voter: 1}
    assert [h["action"] for h in store.votes.history(answer_id=answer_id, user=voter)] == ["cast", "stale"]


def test_a_replayed_button_press_and_slash_command_count_once(slack, stub, store):
    from urllib.parse import urlencode

    channel, voter = unique("C"), unique("U")
    call, _ = ask(slack, stub, "how do I submit expenses?", channel, unique("U"))
    answer_id = answer_id_of(call)
    try:  # native feedback buttons, or plain ones once Slack refused the native kind
        up = find_action(call["blocks"], kit.FEEDBACK_BUTTONS)["positive_button"]["value"]
        action = {"action_id": kit.FEEDBACK_BUTTONS, "block_id": "b", "type": "feedback_buttons", "value": up}
    except AssertionError:
        up = find_action(call["blocks"], kit.VOTE_UP)["value"]
        action = {"action_id": kit.VOTE_UP, "block_id": "b", "type": "button", "value": up}
    payload = block_action(action, user=voter, channel=channel, message_ts=call.get("ts"),
                           message={"type": "message", "ts": call.get("ts"), "blocks": call["blocks"]})
    assert slack.interactive(payload).status_code == 200
    assert slack.interactive(payload).status_code == 200  # the same signed payload again
    wait_until(lambda: votes(store, answer_id).get(voter) == 1)
    time.sleep(0.5)
    assert votes(store, answer_id) == {voter: 1}  # a replay did not toggle it off
    assert len(store.votes.history(answer_id=answer_id, user=voter)) == 1

    question_channel = unique("C")
    form = {"token": "legacy", "team_id": "T0000001", "channel_id": question_channel, "user_id": voter,
            "user_name": "v", "command": "/askloop", "text": "how do I get a new laptop?",
            "response_url": stub.response_url("replayed"), "trigger_id": unique("trig"), "api_app_id": "A1"}
    body = urlencode(form).encode()
    for _ in range(3):
        assert slack.post(body, "application/x-www-form-urlencoded").status_code == 200
    stub.wait_for("chat.postMessage", lambda c: c.get("channel") == question_channel and "asked" in c.get("text", ""))
    time.sleep(1.0)
    assert len(stub.find("chat.postMessage", lambda c: c.get("channel") == question_channel
                         and "asked" in c.get("text", ""))) == 1
