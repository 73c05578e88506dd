"""Learning from the thread: the team's own answers become suggested corrections.

- **Ask an expert.** Under an abstention, and to whoever marks an answer 👎 (only them), a
  button mentions the configured expert group (`ASKLOOP_EXPERT_GROUP`) in the thread, once per
  answer.
- **The offer.** When a teammate (not the asker) replies in a thread whose latest answer
  abstained or has a 👎, with something that reads like an answer, the bot offers *them* —
  once per answer, in a message only they see — to suggest that reply as the answer.
- **Accepted**, the reply becomes a pending correction through `FeedbackLoop.suggest_correction`
  with its provenance (who, the reply's permalink), and is posted to the review channel like
  every other suggestion: it changes answers only once a moderator approves it and the
  proposal that learns it passes the evaluation gate.
Each step is claimed by key, so a replayed press or a second replica acts once.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack import conversation_blocks as talk
from bot.slack.deps import BotDeps, log
from bot.slack.replies import NOT_SAVED, ephemeral, tell
from bot.slack.review import announce
from bot.slack.votes import reaction_value
from feedback.errors import FeedbackError
from feedback.records import AnswerRecord


async def _claim(deps: BotDeps, key: str) -> bool:
    try:
        return await deps.db(deps.loop.claim, key)
    except Exception:
        log.exception("could not claim %s", key)
        return False


async def _release(deps: BotDeps, key: str) -> None:
    try:
        await deps.db(deps.loop.release, key)
    except Exception:
        log.exception("could not release %s", key)


async def needs_help(deps: BotDeps, answer: AnswerRecord) -> bool:
    """An answer the team may improve on: it abstained, or someone's vote on it is 👎."""
    if answer.abstained:
        return True
    votes = await deps.db(deps.loop.votes_for, answer.id)
    return any(v.value < 0 for v in votes)


async def maybe_offer_reply(deps: BotDeps, client: AsyncWebClient, event: dict[str, Any], answer: AnswerRecord,
                            text: str) -> bool:
    """Offer a teammate's reply (`text`, readable) as the answer to `answer`, once per person
    and answer; True when the offer was shown."""
    replier, channel, reply_ts = event["user"], event["channel"], event["ts"]
    if replier == answer.asker:
        return False
    try:
        if not await needs_help(deps, answer):
            return False
    except Exception:
        log.exception("could not read the votes of answer %s", answer.id)
        return False
    value = talk.offer_value(answer.id, reply_ts, replier, text)
    if value is None:
        log.info("a reply in %s is too long to offer as a suggestion in a button", channel)
        return False
    key = f"offer:{answer.id}:{replier}"
    if not await _claim(deps, key):
        return False
    text_, blocks = talk.offer(answer.as_asked, value, answer.id)
    try:
        await client.chat_postEphemeral(channel=channel, user=replier, text=text_, blocks=blocks,
                                        thread_ts=event.get("thread_ts"))
    except Exception as exc:
        log.warning("could not offer %s's reply as a suggestion: %s", replier, exc)
        await _release(deps, key)
        return False
    log.info("offered %s's reply in %s to answer %s as a suggestion", replier, channel, answer.id)
    return True


async def permalink(client: AsyncWebClient, channel: str, ts: str) -> str | None:
    """The reply's permalink, or None when Slack does not give one (kept without it)."""
    try:
        response = await client.chat_getPermalink(channel=channel, message_ts=ts)
    except Exception as exc:
        log.warning("no permalink for %s:%s: %s", channel, ts, exc)
        return None
    link = response.get("permalink")
    return str(link) if link else None


async def on_suggest_reply(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], respond: Any) -> None:
    """"Suggest it as the answer" pressed: the reply becomes a pending correction, once."""
    action = (body.get("actions") or [{}])[0]
    user = (body.get("user") or {}).get("id", "")
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    try:
        offer = talk.parse_offer(action.get("value", ""))
    except ValueError:
        await ephemeral(client, body, "That button is not an offer I understand.")
        return
    if offer["u"] != user:
        await ephemeral(client, body, "Only the person who wrote the reply can suggest it.")
        return
    key = f"thread-reply:{offer['a']}:{offer['ts']}"
    if not await _claim(deps, key):
        await respond(replace_original=True, text="That reply has already been suggested.")
        return
    link = await permalink(client, channel, offer["ts"]) if channel else None
    try:
        correction = await deps.db(deps.loop.suggest_correction, offer["a"], user, text=offer["t"],
                                   origin=talk.THREAD_ORIGIN, permalink=link)
    except FeedbackError as exc:
        await _release(deps, key)
        await respond(replace_original=True, text=f"Your reply was not suggested: {kit.escape(exc)}")
        return
    except Exception:
        log.exception("the reply of %s could not be suggested for answer %s", user, offer["a"])
        await _release(deps, key)
        await respond(replace_original=True, text=NOT_SAVED)
        return
    log.info("correction %s suggested from %s's reply (%s)", correction.id, user, link)
    await respond(replace_original=True, text=f"Thanks! Your reply is suggested as correction #{correction.id}; "
                                              "a moderator reviews it before it changes any answer.")
    await announce(deps, client, "correction", correction.id)


async def on_dismiss_offer(respond: Any) -> None:
    """"No thanks": the offer goes away (it is not made again for that answer)."""
    await respond(delete_original=True)


async def on_ask_expert(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    """"Ask an expert" pressed: the expert group is mentioned in the answer's thread, once."""
    action = (body.get("actions") or [{}])[0]
    user = (body.get("user") or {}).get("id", "")
    group = deps.settings.expert_group
    if not group:
        await ephemeral(client, body, "No expert group is configured (ASKLOOP_EXPERT_GROUP).")
        return
    try:
        answer = await deps.db(deps.loop.get_answer, action.get("value", ""))
    except FeedbackError as exc:
        await ephemeral(client, body, f"Cannot ask the experts about that: {kit.escape(exc)}")
        return
    except Exception:
        log.exception("could not read answer %s for Ask an expert", action.get("value"))
        await ephemeral(client, body, NOT_SAVED)
        return
    if not talk.experts_can_see(answer.channel):
        await ephemeral(client, body, "The experts can't see this conversation; ask in a channel instead.")
        return
    key = f"expert:{answer.id}"
    if not await _claim(deps, key):
        await ephemeral(client, body, "The experts have already been asked in this thread.")
        return
    text, blocks = talk.expert_request(group, answer.asker, answer.as_asked, user, answer.abstained)
    try:
        await client.chat_postMessage(channel=str(answer.channel), thread_ts=answer.thread_ts, text=text,
                                      blocks=blocks)
    except Exception as exc:
        log.warning("could not ask the experts about answer %s: %s", answer.id, exc)
        await _release(deps, key)
        await ephemeral(client, body, "I couldn't post in the thread just now; please try again.")
        return
    log.info("experts asked about answer %s by %s", answer.id, user)


async def after_downvote(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any],
                         bot_user_id: str | None) -> None:
    """After a 👎 reaction on an answer: "Ask an expert", to that person only, once per answer."""
    event = body.get("event") or {}
    item = event.get("item") or {}
    user = event.get("user") or ""
    channel, ts = str(item.get("channel", "")), str(item.get("ts", ""))
    if not deps.settings.expert_group or reaction_value(event.get("reaction", "")) != -1 or not user \
            or user == bot_user_id or item.get("type") != "message" or not talk.experts_can_see(channel):
        return
    try:
        answer_id = await deps.answer_id_for(channel, ts)
        if answer_id is None:
            return
        answer = await deps.db(deps.loop.get_answer, answer_id)
        if not any(v.user == user and v.value < 0 for v in await deps.db(deps.loop.votes_for, answer_id)):
            return  # not counted as a 👎 (refused, or already withdrawn)
    except Exception:
        log.exception("could not check the 👎 on %s:%s", channel, ts)
        return
    if not await _claim(deps, f"expert-offer:{answer_id}:{user}"):
        return
    text, blocks = talk.after_downvote(answer_id, "Sorry that didn't help.")
    await tell(client, user, text, channel=channel, thread_ts=answer.thread_ts, blocks=blocks)
