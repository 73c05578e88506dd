"""Taking part in a conversation: which messages the bot answers, with the thread in view.

Every message event and mention comes here after the ack (lazy listeners):
- a mention is answered (unless it only says thanks), inside a thread with that thread's
  answers as context;
- a direct message is answered unless it only says thanks;
- a message in a channel thread the bot has answered goes through the turn-taking rules of
  `addressing` (the asker's follow-up questions; never chatter or messages to others), and
  is then answered with the thread's earlier answers, which the feedback loop reads as the
  conversation. A teammate's reply that does not call for an answer may instead be offered as
  a suggested answer (`thread_learning`).
Text-only rules run first, so chatter in busy threads costs no lookup at all.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import addressing
from bot.slack import blocks as kit
from bot.slack.answering import answer_in_thread, bot_in_thread, question_from
from bot.slack.deps import BotDeps, log
from bot.slack.thread_learning import maybe_offer_reply
from feedback.records import AnswerRecord


async def first_delivery(deps: BotDeps, body: dict[str, Any]) -> bool:
    """True the first time this event is seen by any replica (Slack retries and replays: False)."""
    event_id = body.get("event_id")
    if not event_id:
        return True
    first = await deps.db(deps.loop.claim, f"event:{event_id}")
    if not first:
        log.info("ignoring a retried delivery of %s", event_id)
    return first


async def thread_answers(deps: BotDeps, channel: str, thread_ts: str | None) -> list[AnswerRecord]:
    """The thread's answers so far (its conversation); none when it cannot be read (the
    question is then answered on its own rather than not at all)."""
    if not thread_ts:
        return []
    try:
        return await deps.db(deps.loop.thread_answers, channel, thread_ts)
    except Exception:
        log.exception("could not read the answers of thread %s:%s; answering without them", channel, thread_ts)
        return []


async def ask(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], *, channel: str, thread_ts: str | None,
              text: str, user: str, origin: str, bot_user_id: str | None, question_ts: str | None,
              earlier: list[AnswerRecord] | None = None) -> None:
    """Answer one message once (claimed by its event id), with the thread's answers as context."""
    try:
        if not await first_delivery(deps, body):
            return
    except Exception:
        log.exception("could not claim event %s", body.get("event_id"))
        text_, blocks = kit.notice_message(kit.APOLOGY)
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text_, blocks=blocks)
        return
    if earlier is None:
        earlier = await thread_answers(deps, channel, thread_ts) if thread_ts != question_ts else []
    await answer_in_thread(deps, client, channel=channel, thread_ts=thread_ts,
                           question=question_from(text, bot_user_id), user=user, origin=origin,
                           question_ts=question_ts, earlier=earlier)


async def on_mention(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], event: dict[str, Any],
                     bot_user_id: str | None) -> None:
    if str(event.get("channel", "")).startswith("D"):
        return  # a direct message: answered from its message.im event, not twice
    text = event.get("text", "")
    verdict = addressing.mentioned(text)
    if not verdict.answer:
        log.info("not answering a mention in %s: %s", event.get("channel"), verdict.why)
        return
    await ask(deps, client, body, channel=event["channel"], thread_ts=event.get("thread_ts") or event["ts"],
              text=text, user=event["user"], origin="slack_mention", bot_user_id=bot_user_id,
              question_ts=event["ts"])


async def on_message(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], event: dict[str, Any],
                     bot_user_id: str | None, bot_id: str | None) -> None:
    """A message by a person: in a direct message, or in a channel thread."""
    user = event["user"]
    if user == bot_user_id:
        return
    text = event.get("text") or ""
    thread_ts = event.get("thread_ts")
    if event.get("channel_type") == "im":
        verdict = addressing.direct(text)
        if not verdict.answer:
            log.info("not answering a direct message: %s", verdict.why)
            return
        await ask(deps, client, body, channel=event["channel"], thread_ts=thread_ts or event["ts"], text=text,
                  user=user, origin="slack_dm", bot_user_id=bot_user_id, question_ts=event["ts"])
        return
    # In channels only thread replies; a message mentioning the bot is app_mention's.
    if not thread_ts or thread_ts == event.get("ts") or addressing.mentions(text, bot_user_id):
        return
    await on_thread_reply(deps, client, body, event, bot_user_id, bot_id)


async def on_thread_reply(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], event: dict[str, Any],
                          bot_user_id: str | None, bot_id: str | None) -> None:
    """A reply in a channel thread without a mention: a follow-up to answer, a reply to learn
    from, or (most of the time) people talking to each other."""
    channel, thread_ts, user = event["channel"], event["thread_ts"], event["user"]
    text = event.get("text") or ""
    mode = deps.settings.thread_mode(channel)
    # what no asker check can change: settled from the text alone, without a lookup
    quiet = mode == "mention" or addressing.is_emoji_only(text) or addressing.is_acknowledgement(text) \
        or addressing.addressed_to_others(text, bot_user_id)
    may_teach = addressing.looks_like_an_answer(text, bot_user_id)
    if quiet and not may_teach:
        log.debug("not answering a reply in %s:%s (its words say it is not for the bot)", channel, thread_ts)
        return
    if not await bot_in_thread(deps, client, channel, thread_ts, bot_user_id, bot_id):
        return
    earlier = await thread_answers(deps, channel, thread_ts)
    # The asker: whoever asked the thread's recorded questions; for a thread the store does not
    # know (the bot posted only a notice), the thread's author; when even that is unknown,
    # whoever speaks (the wording rules still apply).
    parent = event.get("parent_user_id")
    askers = {a.asker for a in earlier} or ({str(parent)} if parent else {user})
    verdict = addressing.in_thread(text, speaker=user, askers=askers, bot_user_id=bot_user_id, mode=mode)
    if verdict.answer:
        await ask(deps, client, body, channel=channel, thread_ts=thread_ts, text=text, user=user,
                  origin="slack_thread", bot_user_id=bot_user_id, question_ts=event["ts"], earlier=earlier)
        return
    log.info("not answering a reply in %s:%s: %s", channel, thread_ts, verdict.why)
    if may_teach and earlier and user not in askers:
        await maybe_offer_reply(deps, client, event, earlier[-1], question_from(text, bot_user_id))
