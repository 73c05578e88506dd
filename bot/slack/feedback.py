"""👍/👎 from reactions and buttons, and the "Suggest a correction" modal.

Votes go to the FeedbackStore, which keeps one vote per user per answer and every raw event.
Reactions on messages that are not bot answers are ignored; button presses get an ephemeral
confirmation, and pressing the same vote again withdraws it.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps, log
from bot.slack.moderation import announce_correction
from feedback.errors import FeedbackError

REACTION_VALUES = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}
EMOJI = {1: "👍", -1: "👎"}


def reaction_value(name: str) -> int | None:
    """+1/-1 for thumbs up/down (any skin tone), None for every other reaction."""
    return REACTION_VALUES.get((name or "").split("::")[0])


async def current_vote(deps: BotDeps, answer_id: int, user: str) -> int | None:
    for vote in await deps.db(deps.store.votes_for, answer_id):
        if vote.user == user:
            return int(vote.value)
    return None


def apply_reaction(store: Any, event_id: str | None, answer_id: int, user: str, value: int,
                   added: bool) -> str:
    """Claim the delivery, then record or withdraw the vote (synchronous, one worker call).

    Returns what happened, for the log. A removed 👍 withdraws the vote only while the user's
    vote is still 👍 (they may have switched to 👎 since).
    """
    if event_id and not store.claim_event(event_id):
        return "retried delivery ignored"
    try:
        if added:
            outcome = store.vote(answer_id, user, value, source="slack_reaction")
            return f"vote {value:+d} (counted={outcome.counted})"
        current = next((v.value for v in store.votes_for(answer_id) if v.user == user), None)
        if current == value:
            store.remove_vote(answer_id, user, source="slack_reaction")
            return "vote removed"
        return "nothing to remove"
    except FeedbackError as exc:
        return f"refused: {exc}"


async def on_reaction(deps: BotDeps, body: dict[str, Any], *, added: bool,
                      bot_user_id: str | None) -> None:
    """A 👍/👎 reaction added or removed; reactions on anything but our answers are ignored."""
    event = body.get("event") or {}
    value = reaction_value(event.get("reaction", ""))
    item = event.get("item") or {}
    user = event.get("user") or ""
    if value is None or item.get("type") != "message" or not user or user == bot_user_id:
        return
    answer_id = await deps.answer_id_for(item.get("channel", ""), item.get("ts", ""))
    if answer_id is None:
        return  # not one of our answers: nothing to claim or record
    what = await deps.db(apply_reaction, deps.store, body.get("event_id"), answer_id, user, value,
                         added)
    log.info("reaction %s by %s on answer %s: %s", event.get("reaction"), user, answer_id, what)


async def ephemeral(client: AsyncWebClient, body: dict[str, Any], text: str,
                    blocks: list[dict[str, Any]] | None = None) -> None:
    """A message only the presser sees: in the channel of the pressed message, else by DM."""
    user = (body.get("user") or {}).get("id", "")
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    message = body.get("message") or {}
    thread_ts = message.get("thread_ts")
    try:
        if channel:
            await client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks,
                                            thread_ts=thread_ts)
        else:
            await client.chat_postMessage(channel=user, text=text, blocks=blocks)
    except Exception:
        log.exception("could not tell %s: %s", user, text)


async def on_vote_button(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    action = (body.get("actions") or [{}])[0]
    user = (body.get("user") or {}).get("id", "")
    try:
        value, answer_id = kit.parse_feedback_value(action.get("value", ""))
    except ValueError:
        await ephemeral(client, body, "That button is not a vote I understand.")
        return
    try:
        if await current_vote(deps, answer_id, user) == value:
            await deps.db(deps.store.remove_vote, answer_id, user, source="slack_button")
            text = f"Removed your {EMOJI[value]} on answer #{answer_id}."
        else:
            outcome = await deps.db(deps.store.vote, answer_id, user, value, source="slack_button")
            text = f"Thanks! Your {EMOJI[value]} on answer #{answer_id} is recorded."
            if not outcome.counted:
                text += f" (It won't count towards learning: {kit.escape(outcome.why)}.)"
    except FeedbackError as exc:
        text = f"Your vote was not recorded: {kit.escape(exc)}"
    await ephemeral(client, body, text)


async def open_correction_modal(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    action = (body.get("actions") or [{}])[0]
    try:
        answer_id = int(action.get("value", ""))
        record = await deps.db(deps.store.get_answer, answer_id)
    except (ValueError, FeedbackError) as exc:
        await ephemeral(client, body, f"Cannot suggest a correction here: {kit.escape(exc)}")
        return
    channel = (body.get("channel") or {}).get("id")
    message = body.get("message") or {}
    metadata = {"channel": channel, "thread_ts": message.get("thread_ts") or message.get("ts")}
    await client.views_open(trigger_id=body["trigger_id"],
                            view=kit.correction_modal(answer_id, record.question, metadata))


def modal_values(view: dict[str, Any]) -> tuple[str | None, str | None]:
    """(text, source) from a submitted correction/edit modal; blanks become None."""
    values = (view.get("state") or {}).get("values") or {}

    def get(block: str, action: str) -> str | None:
        raw = ((values.get(block) or {}).get(action) or {}).get("value")
        return raw.strip() or None if isinstance(raw, str) else None

    return get(kit.TEXT_BLOCK, kit.TEXT_INPUT), get(kit.SOURCE_BLOCK, kit.SOURCE_INPUT)


def correction_errors(text: str | None, source: str | None) -> dict[str, str]:
    """Inline modal errors for input that is plainly wrong (the store re-checks everything)."""
    if not text and not source:
        return {kit.TEXT_BLOCK: "Write a better answer, or give a better source below."}
    if source and any(c.isspace() for c in source):
        return {kit.SOURCE_BLOCK: "A source is one URL (https://…) or a document id, without spaces."}
    if source and "://" in source and not source.startswith(("http://", "https://")):
        return {kit.SOURCE_BLOCK: "A source URL must start with http:// or https://."}
    return {}


async def submit_correction(deps: BotDeps, client: AsyncWebClient, ack: Any,
                            body: dict[str, Any]) -> None:
    """Validate, store as pending (one transaction), close the modal, then tell everyone."""
    view = body.get("view") or {}
    user = (body.get("user") or {}).get("id", "")
    text, source = modal_values(view)
    errors = correction_errors(text, source)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
        answer_id = int(metadata["answer_id"])
    except (ValueError, KeyError, TypeError):
        await ack(response_action="errors", errors={kit.TEXT_BLOCK: "This form has expired; "
                                                    "press ✏️ on the answer again."})
        return
    try:
        correction = await deps.db(deps.store.suggest_correction, answer_id, user, text=text,
                                    source_ref=source)
    except FeedbackError as exc:
        block = kit.SOURCE_BLOCK if "source" in str(exc).lower() else kit.TEXT_BLOCK
        await ack(response_action="errors", errors={block: str(exc)[:150]})
        return
    await ack()
    log.info("correction %s suggested by %s for answer %s", correction.id, user, answer_id)
    channel = metadata.get("channel")
    thanks = (f"Thanks! Your correction #{correction.id} is waiting for a moderator; "
              "answers change only after it is approved.")
    try:
        if channel:
            await client.chat_postEphemeral(channel=channel, user=user, text=thanks,
                                            thread_ts=metadata.get("thread_ts"))
        else:
            await client.chat_postMessage(channel=user, text=thanks)
    except Exception:
        log.exception("could not confirm correction %s to %s", correction.id, user)
    await announce_correction(deps, client, correction.id)
