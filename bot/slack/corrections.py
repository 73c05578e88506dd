"""The "Suggest a correction" form: opened at the press, filled after, checked before it closes.

- The form opens straight from the button press (a trigger expires after 3 seconds) and is
  filled with `views.update` once the answer and its sources are read.
- On submit, plainly wrong input and a source that names no document are shown inline (the form
  stays open with what the person wrote); then the form closes and the correction is stored.
  Should storing fail, the person is told at once, with their text, so nothing is silently lost.
- A replayed submission (same view) is stored once.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps, Deadline, log
from bot.slack.forms import read_form
from bot.slack.replies import NOT_SAVED, tell
from bot.slack.review import announce
from feedback.errors import FeedbackError
from feedback.loop import UnknownDocument

TITLE = "Suggest a correction"


async def open_form(client: AsyncWebClient, body: dict[str, Any]) -> dict[str, Any]:
    """Right after the press, before anything else: open the form (filled by `fill_form`)."""
    response = await client.views_open(trigger_id=body["trigger_id"],
                                       view=kit.loading_modal(TITLE, kit.CORRECTION_MODAL))
    return dict(response["view"])


async def fill_form(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any], view: dict[str, Any]) -> None:
    """After the ack: the question and the answer's sources into the opened form."""
    action = (body.get("actions") or [{}])[0]
    try:
        record = await deps.db(deps.loop.get_answer, action.get("value", ""))
    except FeedbackError as exc:
        await client.views_update(view_id=view["id"], view=kit.notice_modal(TITLE, f"Cannot suggest a correction "
                                                                                 f"here: {kit.escape(exc)}"))
        return
    message = body.get("message") or {}
    metadata = {"channel": (body.get("channel") or {}).get("id"),
                "thread_ts": message.get("thread_ts") or message.get("ts")}
    try:
        sources = await deps.work(deps.loop.shown_documents, record, timeout=2.0)
    except Exception as exc:  # the search box and the path field still work
        log.warning("could not list answer %s's sources for the correction form: %s", record.id, exc)
        sources = []
    await client.views_update(view_id=view["id"], hash=view.get("hash"),
                              view=kit.correction_modal(record.id, record.question, metadata, sources))


async def document_options(deps: BotDeps, query: str) -> dict[str, Any]:
    """Options for the form's document search: titles containing what was typed."""
    try:
        documents = await deps.work(deps.loop.catalog.search_titles, query, 50, timeout=2.0)
    except Exception as exc:  # Chroma down or slow: an empty list, the typed path still works
        log.warning("document search for the correction form failed: %s", exc)
        return {"options": []}
    return kit.document_options([(d.doc_id, d.title) for d in documents])


async def check_submission(deps: BotDeps, ack: Any, body: dict[str, Any]) -> bool:
    """Inline errors, or ack (closing the form). True when the form was accepted."""
    form, errors = read_form(body.get("view") or {})
    if not errors and "answer_id" not in form.metadata:
        errors = {kit.TEXT_BLOCK: "This form has expired; press ✏️ on the answer again."}
    if not errors and form.source:
        try:
            await deps.work(deps.loop.resolve_source, form.source, text=form.text, timeout=1.5)
        except UnknownDocument as exc:
            errors = {kit.SOURCE_BLOCK: str(exc)[:150]}
        except (Deadline, Exception) as exc:  # checked again when stored; the person is told then
            log.info("could not check a correction's source before closing the form: %s", exc)
    if errors:
        await ack(response_action="errors", errors=errors)
        return False
    await ack()
    return True


async def store_submission(deps: BotDeps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    """After the ack: store the correction once, thank the person, post it for review."""
    view = body.get("view") or {}
    user = (body.get("user") or {}).get("id", "")
    form, errors = read_form(view)
    if errors or "answer_id" not in form.metadata:
        return
    channel, thread_ts = form.metadata.get("channel"), form.metadata.get("thread_ts")
    try:
        if not await deps.db(deps.loop.claim, f"view:{view.get('id')}"):
            return  # a replayed submission
        correction = await deps.db(deps.loop.suggest_correction, form.metadata["answer_id"], user, text=form.text,
                                   source=form.source, origin="slack")
    except FeedbackError as exc:
        await tell(client, user, f"Your correction was not saved: {kit.escape(exc)}\n{_quoted(form.text, form.source)}",
                   channel=channel, thread_ts=thread_ts)
        return
    except Exception:
        log.exception("correction by %s on answer %s could not be stored", user, form.metadata.get("answer_id"))
        await tell(client, user, f"{NOT_SAVED}\n{_quoted(form.text, form.source)}", channel=channel,
                   thread_ts=thread_ts)
        return
    log.info("correction %s suggested by %s for answer %s", correction.id, user, correction.answer_id)
    await tell(client, user, f"Thanks! Your correction #{correction.id} is waiting for a moderator; answers "
                             "change only after it is approved.", channel=channel, thread_ts=thread_ts)
    await announce(deps, client, "correction", correction.id)


def _quoted(text: str | None, source: str | None) -> str:
    """What the person wrote, so they can send it again."""
    parts = [f"> {kit.escape(line)}" for line in (text or "").splitlines()[:20]]
    if source:
        parts.append(f"> source: {kit.escape(source)}")
    return "\n".join(["What you wrote:"] + parts) if parts else ""
