"""👍/👎 from reactions and from the answer's buttons, through `FeedbackLoop`.

Reactions are recorded *before* Slack gets its answer: the delivery claim and the vote are one
transaction in the loop, so when the database cannot be reached the request fails, Slack
delivers the event again (up to three times over several minutes), and the retry is processed —
a reaction acknowledged is a reaction kept. Buttons are acknowledged at once (Slack never
redelivers them); the vote is then written and the person is told what happened, including
when it did not count. Pressing the vote already in force withdraws it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack import conversation_blocks as talk
from bot.slack.deps import BotDeps, log
from bot.slack.replies import NOT_SAVED, ephemeral, where
from feedback.errors import FeedbackError
from feedback.records import VoteResult

REACTION_VALUES = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}
EMOJI = {1: "👍", -1: "👎"}


def reaction_value(name: str) -> int | None:
    """+1/-1 for thumbs up/down (any skin tone), None for every other reaction."""
    return REACTION_VALUES.get((name or "").split("::")[0])


def slack_time(ts: object) -> datetime | None:
    """A Slack timestamp ("1700000000.123456") as a UTC datetime; None when absent or malformed."""
    try:
        return datetime.fromtimestamp(float(str(ts)), timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None


def record_reaction(deps: BotDeps, channel: str, ts: str, user: str, value: int, added: bool,
                    at: datetime | None, delivery: str | None) -> str:
    """Find the answer and record (or withdraw) the vote: synchronous, under one deadline."""
    key = f"{channel}:{ts}"
    answer_id = deps.answer_ids.get(key)
    if answer_id is None:
        record = deps.loop.answer_for_message(channel, ts)
        if record is None:
            return "not one of our answers"
        answer_id = deps.answer_ids[key] = record.id
    try:
        if added:
            result = deps.loop.vote(answer_id, user, value, source="slack_reaction", at=at, delivery=delivery)
        else:
            result = deps.loop.withdraw_vote(answer_id, user, value, source="slack_reaction", at=at,
                                             delivery=delivery)
    except FeedbackError as exc:  # refused: nothing to retry
        return f"refused: {exc}"
    return f"answer {answer_id}: {result.action} (vote now {result.value:+d})"


async def on_reaction(deps: BotDeps, body: dict[str, Any], *, added: bool, bot_user_id: str | None) -> None:
    """A 👍/👎 reaction added or removed; reactions on anything but our answers are ignored.
    Raises when the database fails, so the request fails and Slack delivers it again."""
    event = body.get("event") or {}
    value = reaction_value(event.get("reaction", ""))
    item = event.get("item") or {}
    user = event.get("user") or ""
    if value is None or item.get("type") != "message" or not user or user == bot_user_id:
        return
    what = await deps.db(record_reaction, deps, str(item.get("channel", "")), str(item.get("ts", "")), user,
                         value, added, slack_time(event.get("event_ts")), body.get("event_id"))
    log.info("reaction %s by %s: %s", event.get("reaction"), user, what)


def vote_message(result: VoteResult, value: int, answer_id: int) -> str:
    if result.action == "duplicate":
        return ""
    if result.action == "remove":
        return f"Removed your {EMOJI[value]} on answer #{answer_id}."
    if result.action == "stale":
        return f"Your vote on answer #{answer_id} is {EMOJI.get(result.value, 'withdrawn')} (a later click counted)."
    text = f"Thanks! Your {EMOJI[value]} on answer #{answer_id} is recorded."
    if not result.counted:
        text += f" (It won't count towards learning: {kit.escape(result.why)}.)"
    return text


async def on_vote_button(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    """After the ack: toggle the vote (a replayed press is recognised by its trigger) and say so."""
    action = (body.get("actions") or [{}])[0]
    user = (body.get("user") or {}).get("id", "")
    try:
        value, answer_id = kit.parse_feedback_value(action.get("value", ""))
    except ValueError:
        await ephemeral(client, body, "That button is not a vote I understand.")
        return
    delivery = f"action:{body.get('trigger_id') or action.get('action_ts')}"
    try:
        result = await deps.db(deps.loop.toggle_vote, answer_id, user, value, source="slack_button",
                               at=slack_time(action.get("action_ts")), delivery=delivery)
    except FeedbackError as exc:
        await ephemeral(client, body, f"Your vote was not recorded: {kit.escape(exc)}")
        return
    except Exception:
        log.exception("vote button on answer %s by %s could not be recorded", answer_id, user)
        await ephemeral(client, body, NOT_SAVED)
        return
    text = vote_message(result, value, answer_id)
    _, channel, _ = where(body)
    if text and result.value < 0 and result.changed and deps.settings.expert_group and talk.experts_can_see(channel):
        text, blocks = talk.after_downvote(answer_id, text)  # and "Ask an expert"
        await ephemeral(client, body, text, blocks)
    elif text:
        await ephemeral(client, body, text)
