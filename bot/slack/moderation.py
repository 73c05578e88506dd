"""Moderation in Slack: the review channel, Approve/Reject/Edit, rollback, App Home, stats.

Every decision goes through the FeedbackStore, which checks the moderator again and changes
state in one transaction; here we only check first (to refuse politely, changing nothing) and
show the result: the review message is rebuilt from the store and updated in place.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps, log
from feedback.errors import FeedbackError, InvalidState

REFUSAL = "Only moderators can do that; nothing was changed."


# -- the review channel -------------------------------------------------------------------------


def _correction_message(deps: BotDeps, correction_id: int) -> tuple[str, list[dict[str, Any]]]:
    correction = deps.store.get_correction(correction_id)
    answer = deps.store.get_answer(correction.answer_id)
    text, blocks = kit.correction_review(correction, answer)
    if correction.status != "pending":
        verdict = "Approved" if correction.status == "approved" else "Rejected"
        edited = correction.original_text is not None or correction.original_source_ref is not None
        if correction.status == "approved" and edited:
            verdict = "Edited and approved"
        text, blocks = kit.decided(blocks, verdict, correction.decided_by or "?",
                                   correction.decided_at, correction.note)
    return text, blocks


def _proposal_message(deps: BotDeps, proposal_id: int) -> tuple[str, list[dict[str, Any]]]:
    proposal = deps.store.get_proposal(proposal_id)
    text, blocks = kit.proposal_review(proposal)
    if proposal.status in {"approved", "applied", "rejected"}:
        verdict = {"approved": "Approved", "rejected": "Rejected",
                   "applied": f"Approved and applied as version {proposal.applied_version}"}
        text, blocks = kit.decided(blocks, verdict[proposal.status], proposal.decided_by or "?",
                                   proposal.decided_at, proposal.note)
    return text, blocks


def review_message(deps: BotDeps, kind: str, item_id: int) -> tuple[str, list[dict[str, Any]]]:
    """The review message for an item as it stands now (synchronous)."""
    if kind == "correction":
        return _correction_message(deps, item_id)
    return _proposal_message(deps, item_id)


async def may_moderate(deps: BotDeps, client: AsyncWebClient, user: str) -> bool:
    """A moderator by setting or usergroup (Slack side) or by the store's own list."""
    return await deps.moderators.is_moderator(client, user) or deps.store.is_moderator(user)


async def announce(deps: BotDeps, client: AsyncWebClient, kind: str, item_id: int) -> None:
    """Post an item to the review channel once (claimed in the database: once across replicas)."""
    channel = deps.settings.review_channel
    if not channel:
        return
    key = f"review-post:{kind}:{item_id}"
    if key in deps.announced:
        return
    try:
        claimed = await deps.db(deps.store.claim_event, key)
        deps.announced.add(key)
        if not claimed:
            return
        text, blocks = await deps.db(review_message, deps, kind, item_id)
        await client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                      unfurl_links=False, unfurl_media=False)
    except Exception:
        log.exception("could not post %s %s to the review channel", kind, item_id)


async def announce_correction(deps: BotDeps, client: AsyncWebClient, correction_id: int) -> None:
    await announce(deps, client, "correction", correction_id)


async def announce_pending(deps: BotDeps, client: AsyncWebClient) -> int:
    """Post every pending item not yet posted (proposals come from the learning engine)."""
    page, posted = 1, 0
    while True:
        review = await deps.db(deps.store.pending_review, page, 100)
        for item in review.items:
            await announce(deps, client, item.kind, item.id)
            posted += 1
        if page >= review.pages:
            return posted
        page += 1


async def watch_review_queue(deps: BotDeps, client: AsyncWebClient) -> None:
    """Background task of `askloop serve`: announce new proposals and corrections."""
    interval = deps.settings.slack_review_poll
    while interval > 0:
        try:
            await announce_pending(deps, client)
        except Exception:
            log.exception("review queue check failed")
        await asyncio.sleep(interval)


# -- decisions ----------------------------------------------------------------------------------


def _decide(deps: BotDeps, kind: str, item_id: int, approve: bool, moderator: str,
            text: str | None = None, source: str | None = None) -> str:
    """Apply the decision (synchronous); returns what to tell the moderator."""
    store = deps.store
    if kind == "correction":
        if not approve:
            store.reject_correction(item_id, moderator)
            return f"Correction #{item_id} rejected."
        if text is not None or source is not None:
            store.approve_correction(item_id, moderator, text=text, source_ref=source)
            return f"Correction #{item_id} edited and approved."
        store.approve_correction(item_id, moderator)
        return (f"Correction #{item_id} approved: it will be part of the next proposal, "
                "which is evaluated before it changes any answer.")
    if not approve:
        store.reject_proposal(item_id, moderator)
        return f"Proposal #{item_id} rejected."
    proposal = store.get_proposal(item_id)
    if proposal.status != "approved":
        store.approve_proposal(item_id, moderator, override=proposal.status == "failing")
    version = store.apply_proposal(item_id, moderator)
    return f"Proposal #{item_id} applied: tuning version {version.number} is now live."


def _parse_review(value: str) -> tuple[str, int]:
    data = json.loads(value)
    kind, item_id = data["kind"], int(data["id"])
    if kind not in {"correction", "proposal"}:
        raise ValueError(kind)
    return kind, item_id


async def refresh_surface(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any],
                          respond: Any, kind: str, item_id: int) -> None:
    """Show the new state where the button was: the review message, App Home or the list."""
    container = body.get("container") or {}
    where = container.get("type")
    if where == "message" and not container.get("is_ephemeral"):
        text, blocks = await deps.db(review_message, deps, kind, item_id)
        await client.chat_update(channel=container["channel_id"], ts=container["message_ts"],
                                 text=text, blocks=blocks)
    elif where == "view":
        await publish_home(deps, client, body["user"]["id"])
    elif respond is not None and body.get("response_url"):
        page = await deps.db(deps.store.pending_review, 1, 20)
        text, blocks = kit.queue_message(page.items)
        await respond(text=text, blocks=blocks, replace_original=True)


async def moderator_button(deps: BotDeps, client: AsyncWebClient,
                           body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The moderator who pressed a review, edit or rollback button, and the button's action.

    None once a non-moderator has been told no: every moderation button is checked here, so none
    can skip the check or word the refusal differently."""
    from bot.slack.feedback import ephemeral

    user = body["user"]["id"]
    action = (body.get("actions") or [{}])[0]
    if not await may_moderate(deps, client, user):
        log.info("non-moderator %s pressed %s", user, action.get("action_id"))
        await ephemeral(client, body, REFUSAL)
        return None
    return user, action


async def on_review(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], respond: Any,
                    approve: bool) -> None:
    from bot.slack.feedback import ephemeral

    pressed = await moderator_button(deps, client, body)
    if pressed is None:
        return
    user, action = pressed
    try:
        kind, item_id = _parse_review(action.get("value", ""))
    except (ValueError, KeyError, TypeError):
        await ephemeral(client, body, "That button is not a review decision I understand.")
        return
    try:
        message = await deps.db(_decide, deps, kind, item_id, approve, user)
    except InvalidState as exc:
        message = f"Nothing changed: {kit.escape(exc)}"
    except FeedbackError as exc:
        await ephemeral(client, body, f"Nothing changed: {kit.escape(exc)}")
        return
    log.info("%s %s %s by %s", kind, item_id, "approved" if approve else "rejected", user)
    try:
        await refresh_surface(deps, client, body, respond, kind, item_id)
    except Exception:
        log.exception("could not update the review message for %s %s", kind, item_id)
    await ephemeral(client, body, message)


async def on_edit(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    from bot.slack.feedback import ephemeral

    pressed = await moderator_button(deps, client, body)
    if pressed is None:
        return
    _, action = pressed
    try:
        kind, item_id = _parse_review(action.get("value", ""))
        if kind != "correction":
            raise ValueError(kind)
        correction = await deps.db(deps.store.get_correction, item_id)
    except (ValueError, KeyError, TypeError, FeedbackError) as exc:
        await ephemeral(client, body, f"Cannot edit that: {kit.escape(exc)}")
        return
    container = body.get("container") or {}
    metadata = {"channel": container.get("channel_id"), "ts": container.get("message_ts")}
    await client.views_open(trigger_id=body["trigger_id"], view=kit.edit_modal(correction, metadata))


async def submit_edit(deps: BotDeps, client: AsyncWebClient, ack: Any, body: dict[str, Any]) -> None:
    from bot.slack.feedback import correction_errors, modal_values

    user = body["user"]["id"]
    view = body.get("view") or {}
    text, source = modal_values(view)
    errors = correction_errors(text, source)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    if not await may_moderate(deps, client, user):
        await ack(response_action="errors", errors={kit.TEXT_BLOCK: REFUSAL})
        return
    metadata = json.loads(view.get("private_metadata") or "{}")
    correction_id = int(metadata.get("correction_id", 0))
    try:
        await deps.db(_decide, deps, "correction", correction_id, True, user, text or "", source or "")
    except FeedbackError as exc:
        block = kit.SOURCE_BLOCK if "source" in str(exc).lower() else kit.TEXT_BLOCK
        await ack(response_action="errors", errors={block: str(exc)[:150]})
        return
    await ack()
    if metadata.get("channel") and metadata.get("ts"):
        try:
            text_, blocks = await deps.db(review_message, deps, "correction", correction_id)
            await client.chat_update(channel=metadata["channel"], ts=metadata["ts"], text=text_,
                                     blocks=blocks)
        except Exception:
            log.exception("could not update the review message of correction %s", correction_id)


async def on_rollback(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    from bot.slack.feedback import ephemeral

    pressed = await moderator_button(deps, client, body)
    if pressed is None:
        return
    user, action = pressed
    try:
        number = int(action.get("value", ""))
        await deps.db(deps.store.rollback, number, user)
        text = f"Version {number} is live again." if number else "The base index is live again."
    except (ValueError, FeedbackError) as exc:
        text = f"Nothing changed: {kit.escape(exc)}"
    await publish_home(deps, client, user)
    await ephemeral(client, body, text)


# -- App Home and stats -------------------------------------------------------------------------


def stats_figures(deps: BotDeps) -> dict[str, Any]:
    """Satisfaction and the state of the loop, with the thresholds that shape answers."""
    stats = deps.store.stats()
    figures: dict[str, Any] = {}
    for window in stats.windows:
        if window.window not in {"7d", "all"}:
            continue
        sat = window.satisfaction
        figures[f"answers ({window.window})"] = window.answers
        figures[f"abstained ({window.window})"] = window.abstained
        figures[f"👍 / 👎 ({window.window})"] = f"{window.up} / {window.down}"
        figures[f"satisfaction ({window.window})"] = "–" if sat is None else f"{sat:.0%}"
    figures["pending corrections"] = stats.pending_corrections
    figures["open proposals"] = stats.open_proposals
    figures["active tuning version"] = stats.active_version or "none (base index)"
    figures["answer threshold"] = deps.settings.answer_threshold
    return figures


async def publish_home(deps: BotDeps, client: AsyncWebClient, user: str) -> None:
    moderator = await deps.moderators.is_moderator(client, user) or deps.store.is_moderator(user)

    def gather() -> tuple[dict[str, Any], list[Any], list[Any], int | None]:
        figures = stats_figures(deps)
        if not moderator:
            return figures, [], [], None
        queue = deps.store.pending_review(1, 10).items
        versions = list(reversed(deps.store.versions()))[:10]
        return figures, queue, versions, deps.store.active_version_number()

    figures, queue, versions, active = await deps.db(gather)
    view = kit.home_view(is_moderator=moderator, stats=figures, queue=queue, versions=versions,
                         active=active)
    await client.views_publish(user_id=user, view=view)


HELP = ("*askloop* answers from the team's knowledge base.\n"
        "• `/askloop <question>`: ask (the answer is posted in this channel)\n"
        "• `/askloop stats`: satisfaction and the state of the feedback loop\n"
        "• `/askloop review`: the review queue (moderators)")


async def on_command(deps: BotDeps, client: AsyncWebClient, ack: Any, respond: Any,
                     command: dict[str, Any]) -> None:
    from bot.slack.answering import answer_in_thread, question_from

    text = (command.get("text") or "").strip()
    user, channel = command.get("user_id", ""), command.get("channel_id", "")
    word = text.lower()
    if not text or word == "help":
        await ack(text=HELP)
        return
    if word == "stats":
        await ack()
        try:
            figures = await deps.db(stats_figures, deps)
            body = "\n".join(f"• {kit.escape(k)}: {kit.escape(v)}" for k, v in figures.items())
        except Exception:
            log.exception("stats failed")
            body = kit.APOLOGY
        await respond(text=f"*askloop stats*\n{body}", response_type="ephemeral")
        return
    if word == "review":
        if not await may_moderate(deps, client, user):
            await ack(text=REFUSAL)
            return
        await ack()
        page = await deps.db(deps.store.pending_review, 1, 20)
        text_, blocks = kit.queue_message(page.items)
        await respond(text=text_, blocks=blocks, response_type="ephemeral")
        return
    await ack()
    question = question_from(text, None)
    try:
        posted = await client.chat_postMessage(
            channel=channel, text=f"<@{user}> asked: {kit.escape(question)}",
            unfurl_links=False, unfurl_media=False)
    except Exception as exc:
        log.info("cannot post in %s (%s); answering privately", channel, exc)
        await respond(text="I can't post in this conversation: invite me with `/invite @askloop`, "
                           "or ask me in a direct message.", response_type="ephemeral")
        return
    await answer_in_thread(deps, client, channel=posted["channel"], thread_ts=posted["ts"],
                           question=question, user=user, origin="slack_command")
