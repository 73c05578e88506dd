"""Moderators' buttons and the edit form: Approve, Reject, Apply anyway, Apply, Edit, Roll back.

Every decision is `FeedbackLoop.decide` (or `apply`, `rollback`): the loop checks the moderator
(refusals are audited), enforces the failing-proposal rule and changes state in one transaction;
here the press is acknowledged first, the Slack usergroup is refreshed so the loop's check sees
it, a replayed press is dropped, and the outcome is shown where the button was and told to the
moderator in the loop's own words.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps, log
from bot.slack.forms import read_form
from bot.slack.home import publish_home
from bot.slack.replies import NOT_SAVED, ephemeral, tell
from bot.slack.review import review_message
from feedback.errors import FeedbackError, NeedsOverride, PermissionDenied
from feedback.refs import correction_ref, proposal_ref

Verdict = Literal["approve", "reject", "override", "apply"]
REFUSAL = "Only moderators can do that; nothing was changed."
DECIDE_DEADLINE = 15.0


def parse_review(value: str) -> tuple[str, int]:
    data = json.loads(value)
    kind, item_id = data["kind"], int(data["id"])
    if kind not in {"correction", "proposal"}:
        raise ValueError(kind)
    return kind, item_id


def explain(exc: FeedbackError) -> str:
    """The loop's refusal, plus what to press in Slack to get past it."""
    if isinstance(exc, NeedsOverride):
        return f"Nothing changed: {kit.escape(exc)} — press *Apply anyway* (it asks you to confirm, and is audited)."
    if isinstance(exc, PermissionDenied):
        return REFUSAL
    return f"Nothing changed: {kit.escape(exc)}"


async def _replayed(deps: BotDeps, body: dict[str, Any]) -> bool:
    """A press delivered twice (or replayed) is processed once."""
    trigger = body.get("trigger_id") or ((body.get("actions") or [{}])[0]).get("action_ts")
    return bool(trigger) and not await deps.db(deps.loop.claim, f"action:{trigger}")


async def refresh_surface(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], respond: Any,
                          kind: str, item_id: int) -> None:
    """Show the new state where the button was: the review message, App Home or the list."""
    container = body.get("container") or {}
    where = container.get("type")
    if where == "message" and not container.get("is_ephemeral"):
        text, blocks = await deps.db(review_message, deps, kind, item_id)
        await client.chat_update(channel=container["channel_id"], ts=container["message_ts"], text=text, blocks=blocks)
    elif where == "view":
        await publish_home(deps, client, body["user"]["id"])
    elif respond is not None and body.get("response_url"):
        page = await deps.db(deps.loop.review_queue, 1, 20)
        text, blocks = kit.queue_message(page.items)
        await respond(text=text, blocks=blocks, replace_original=True)


async def on_decision(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], respond: Any,
                      verdict: Verdict) -> None:
    """After the ack: decide through the loop and show the outcome."""
    user = body["user"]["id"]
    action = (body.get("actions") or [{}])[0]
    try:
        kind, item_id = parse_review(action.get("value", ""))
    except (ValueError, KeyError, TypeError):
        await ephemeral(client, body, "That button is not a review decision I understand.")
        return
    ref = correction_ref(item_id) if kind == "correction" else proposal_ref(item_id)
    await deps.moderators.refresh(client)
    try:
        if await _replayed(deps, body):
            return
        if verdict == "apply":
            decision = await deps.db(deps.loop.apply, ref, user, timeout=DECIDE_DEADLINE)
        else:
            decision = await deps.db(deps.loop.decide, ref, user, verdict != "reject",
                                     override=verdict == "override", timeout=DECIDE_DEADLINE)
    except FeedbackError as exc:
        log.info("%s on %s by %s refused: %s", verdict, ref, user, exc)
        await ephemeral(client, body, explain(exc))
        return
    except Exception:
        log.exception("%s on %s by %s failed", verdict, ref, user)
        await ephemeral(client, body, NOT_SAVED)
        return
    log.info("%s %s by %s: %s", ref, verdict, user, decision.outcome)
    try:
        await refresh_surface(deps, client, body, respond, kind, item_id)
    except Exception:
        log.exception("could not update the review message for %s", ref)
    await ephemeral(client, body, kit.escape(decision.message()))


async def open_edit(client: AsyncWebClient, body: dict[str, Any]) -> dict[str, Any]:
    """Right after the press: open the edit form at once (filled by `fill_edit`)."""
    response = await client.views_open(trigger_id=body["trigger_id"],
                                       view=kit.loading_modal("Edit correction", kit.EDIT_MODAL))
    return dict(response["view"])


async def fill_edit(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], view: dict[str, Any]) -> None:
    """After the ack: the suggestion into the form, for a moderator (others are told no there)."""
    user = body["user"]["id"]
    action = (body.get("actions") or [{}])[0]
    if not await deps.may_moderate(client, user):
        await client.views_update(view_id=view["id"], view=kit.notice_modal("Edit correction", REFUSAL))
        return
    try:
        kind, item_id = parse_review(action.get("value", ""))
        if kind != "correction":
            raise ValueError(kind)
        correction = await deps.db(deps.loop.correction, item_id)
    except (ValueError, KeyError, TypeError, FeedbackError) as exc:
        await client.views_update(view_id=view["id"], view=kit.notice_modal("Edit correction",
                                                                              f"Cannot edit that: {kit.escape(exc)}"))
        return
    container = body.get("container") or {}
    metadata = {"channel": container.get("channel_id"), "ts": container.get("message_ts")}
    await client.views_update(view_id=view["id"], hash=view.get("hash"), view=kit.edit_modal(correction, metadata))


async def check_edit(deps: BotDeps, ack: Any, body: dict[str, Any]) -> bool:
    """Inline errors (plainly wrong input, a non-moderator by what is already known), or ack."""
    form, errors = read_form(body.get("view") or {})
    user = body["user"]["id"]
    if not errors and not deps.loop.is_moderator(user):
        errors = {kit.TEXT_BLOCK: REFUSAL}
    if errors:
        await ack(response_action="errors", errors=errors)
        return False
    await ack()
    return True


async def store_edit(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    """After the ack: edit-then-approve through the loop, update the review message, say so."""
    user = body["user"]["id"]
    view = body.get("view") or {}
    form, errors = read_form(view)
    correction_id = int(form.metadata.get("correction_id", 0) or 0)
    if errors or not correction_id:
        return
    try:
        if not await deps.db(deps.loop.claim, f"view:{view.get('id')}"):
            return
        decision = await deps.db(deps.loop.decide, correction_ref(correction_id), user, True,
                                 text=form.text or "", source=form.source or "", timeout=DECIDE_DEADLINE)
    except FeedbackError as exc:
        await tell(client, user, explain(exc))
        return
    except Exception:
        log.exception("edit of correction %s by %s failed", correction_id, user)
        await tell(client, user, NOT_SAVED)
        return
    if form.metadata.get("channel") and form.metadata.get("ts"):
        try:
            text, blocks = await deps.db(review_message, deps, "correction", correction_id)
            await client.chat_update(channel=form.metadata["channel"], ts=form.metadata["ts"], text=text, blocks=blocks)
        except Exception:
            log.exception("could not update the review message of correction %s", correction_id)
    await tell(client, user, kit.escape(decision.message()))


async def on_rollback(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    user = body["user"]["id"]
    action = (body.get("actions") or [{}])[0]
    await deps.moderators.refresh(client)
    try:
        if await _replayed(deps, body):
            return
        number = int(action.get("value", ""))
        await deps.db(deps.loop.rollback, number, user, timeout=DECIDE_DEADLINE)
        text = f"Version {number} is live again." if number else "The base index is live again."
    except ValueError:
        text = "That button is not a version I understand."
    except FeedbackError as exc:
        text = explain(exc)
    except Exception:
        log.exception("rollback by %s failed", user)
        text = NOT_SAVED
    try:
        await publish_home(deps, client, user)
    except Exception:
        log.exception("could not refresh App Home for %s", user)
    await ephemeral(client, body, text)
