"""Block Kit for every message, modal and tab the bot shows.

Builders return plain dicts (what the Web API takes). Every piece of user or document text is
escaped and trimmed here, and every message is cut to Slack's limits by `fit`, so a long answer
or a huge review queue is shortened, never rejected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from bot.slack.text import (
    CONTEXT_TEXT_LIMIT,
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MESSAGE_TEXT_LIMIT,
    MODAL_TITLE_LIMIT,
    SECTION_TEXT_LIMIT,
    escape,
    link,
    mrkdwn,
    plain,
    safe,
    trim,
)

Block = dict[str, Any]

# action ids: the listeners in app.py are registered on these names
VOTE_UP = "askloop_vote_up"
VOTE_DOWN = "askloop_vote_down"
FEEDBACK_BUTTONS = "askloop_feedback"
SUGGEST = "askloop_suggest"
REVIEW_APPROVE = "askloop_review_approve"
REVIEW_REJECT = "askloop_review_reject"
REVIEW_EDIT = "askloop_review_edit"
REVIEW_OVERRIDE = "askloop_review_override"  # "Apply anyway": a failing proposal, behind a confirmation
REVIEW_APPLY = "askloop_review_apply"  # a proposal approved without being applied
ROLLBACK = "askloop_rollback"
CORRECTION_MODAL = "askloop_correction"
EDIT_MODAL = "askloop_edit_correction"

# modal inputs
TEXT_BLOCK, TEXT_INPUT = "correction_text", "text"
SOURCE_BLOCK, SOURCE_INPUT = "correction_source", "source"
SHOWN_BLOCK, SHOWN_INPUT = "correction_shown", "shown"  # one of the answer's sources
SEARCH_BLOCK, SEARCH_INPUT = "correction_search", "search"  # any document, searched by title

LOOKING = "Looking that up…"
APOLOGY = (
    "Sorry, something went wrong on my side while answering. The error has been logged; "
    "please try again in a little while."
)


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(trim(text, SECTION_TEXT_LIMIT) or " ")}


def context(texts: Iterable[str]) -> Block:
    elements = [mrkdwn(trim(t, CONTEXT_TEXT_LIMIT)) for t in texts if t]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS] or [mrkdwn(" ")]}


def button(label: str, action_id: str, value: str, style: str | None = None,
           confirm: Block | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(label), "action_id": action_id,
                      "value": value[:2000]}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def fit(text: str, blocks: list[Block]) -> tuple[str, list[Block]]:
    """The message cut to Slack's limits: at most 50 blocks (a note replaces the rest)."""
    text = trim(text, MESSAGE_TEXT_LIMIT) or " "
    if len(blocks) > MAX_BLOCKS:
        hidden = len(blocks) - (MAX_BLOCKS - 1)
        blocks = blocks[: MAX_BLOCKS - 1] + [context([f"_{hidden} more item(s) not shown._"])]
    return text, blocks


def when(at: datetime | None = None) -> str:
    """A timestamp every reader sees in their own time zone (with a UTC fallback text)."""
    at = at or datetime.now(timezone.utc)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


# -- answers ------------------------------------------------------------------------------------


def feedback_value(value: int, answer_id: int) -> str:
    return f"{value:+d}:{answer_id}"


def parse_feedback_value(value: str) -> tuple[int, int]:
    """(+1|-1, answer id) from a button value; ValueError for anything else."""
    sign, _, number = (value or "").partition(":")
    if sign not in {"+1", "-1"}:
        raise ValueError(f"not a vote: {value!r}")
    return int(sign), int(number)


def feedback_blocks(answer_id: int, native: bool) -> list[Block]:
    """👍/👎 (Slack's native feedback buttons, or plain buttons) and ✏️ Suggest a correction."""
    suggest = button("✏️ Suggest a correction", SUGGEST, str(answer_id))
    if native:
        return [
            {
                "type": "context_actions",
                "block_id": f"feedback-{answer_id}",
                "elements": [{
                    "type": "feedback_buttons",
                    "action_id": FEEDBACK_BUTTONS,
                    "positive_button": {"text": plain("👍 Helpful"),
                                        "accessibility_label": "Mark this answer as helpful",
                                        "value": feedback_value(+1, answer_id)},
                    "negative_button": {"text": plain("👎 Not helpful"),
                                        "accessibility_label": "Mark this answer as not helpful",
                                        "value": feedback_value(-1, answer_id)},
                }],
            },
            {"type": "actions", "block_id": f"suggest-{answer_id}", "elements": [suggest]},
        ]
    return [{
        "type": "actions",
        "block_id": f"feedback-{answer_id}",
        "elements": [
            button("👍 Helpful", VOTE_UP, feedback_value(+1, answer_id)),
            button("👎 Not helpful", VOTE_DOWN, feedback_value(-1, answer_id)),
            suggest,
        ],
    }]


def source_lines(hits: Sequence[Any]) -> list[str]:
    lines = []
    for number, hit in enumerate(hits, 1):
        title = getattr(hit, "title", "") or getattr(hit, "doc_id", "")
        lines.append(f"[{number}] {link(getattr(hit, 'source', '') or '', title)}")
    return lines


def answer_message(answer: Any, answer_id: int | None, *, native_feedback: bool = True,
                   question: str | None = None) -> tuple[str, list[Block]]:
    """The threaded reply: the question, the answer, numbered sources, the tuning version,
    feedback buttons. An abstention says so plainly and shows the closest sources."""
    body = escape(answer.text)
    if answer.abstained:
        body = f"{escape(answer.text)}\n_I'm not confident enough to answer this one._"
    blocks: list[Block] = []
    if question:
        blocks.append(context([f"❓ {safe(question, CONTEXT_TEXT_LIMIT - 10)}"]))
    blocks.append(section(body))
    hits = list(answer.hits)
    if hits:
        label = "Closest sources" if answer.abstained else "Sources"
        blocks.append(context([f"*{label}:*"] + source_lines(hits)[: MAX_CONTEXT_ELEMENTS - 1]))
    version = answer.tuning_version
    how = "extractive" if getattr(answer, "generated_by", "extractive") == "extractive" else "generated"
    blocks.append(context([
        (f"Answered with tuning version {version}" if version else "Answered from the base index")
        + f" · {how}" + (f" · answer #{answer_id}" if answer_id else "")
    ]))
    if answer_id is not None:
        blocks.extend(feedback_blocks(answer_id, native_feedback))
    return fit(escape(answer.text), blocks)


def notice_message(text: str) -> tuple[str, list[Block]]:
    """A short plain reply (looking…, apology, refusal): `text` is ours, not escaped again."""
    return fit(text, [section(text)])


# -- the correction modal -----------------------------------------------------------------------


def loading_modal(title: str, callback_id: str) -> Block:
    """What opens at once when a button needs a form: Slack's trigger expires after 3 seconds,
    so the form is opened first and filled (`views.update`) once its data is read."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, MODAL_TITLE_LIMIT),
        "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "blocks": [section("Loading…")],
    }


def notice_modal(title: str, text: str) -> Block:
    """A form that cannot be shown, replaced by why (`text` is ours)."""
    return {"type": "modal", "title": plain(title, MODAL_TITLE_LIMIT), "close": plain("Close", MODAL_TITLE_LIMIT),
            "blocks": [section(text)]}


def correction_modal(answer_id: int, question: str, metadata: dict[str, Any],
                     sources: Sequence[tuple[str, str]] = ()) -> Block:
    """The correction form: better text, and the document that answers the question — one of
    the answer's own sources, any document found by its title, or a path/URL typed in."""
    blocks: list[Block] = [
        section(f"*Question:* {safe(question, 2800)}"),
        {
            "type": "input",
            "block_id": TEXT_BLOCK,
            "optional": True,
            "label": plain("A better answer"),
            "element": {"type": "plain_text_input", "action_id": TEXT_INPUT,
                        "multiline": True, "max_length": 3000},
        },
    ]
    options = [{"text": plain(title or doc_id, 75), "value": doc_id[:150]}
               for doc_id, title in list(sources)[:100] if len(doc_id) <= 150]
    if options:
        blocks.append({
            "type": "input", "block_id": SHOWN_BLOCK, "optional": True,
            "label": plain("The right source is one of those shown"),
            "element": {"type": "static_select", "action_id": SHOWN_INPUT, "options": options,
                        "placeholder": plain("Pick a source")},
        })
    blocks += [
        {
            "type": "input", "block_id": SEARCH_BLOCK, "optional": True,
            "label": plain("…or another document"),
            "element": {"type": "external_select", "action_id": SEARCH_INPUT, "min_query_length": 2,
                        "placeholder": plain("Type part of its title")},
        },
        {
            "type": "input",
            "block_id": SOURCE_BLOCK,
            "optional": True,
            "label": plain("…or its path or URL"),
            "element": {"type": "plain_text_input", "action_id": SOURCE_INPUT, "max_length": 500},
        },
        context(["A moderator reviews every suggestion before it changes any answer."]),
    ]
    return {
        "type": "modal",
        "callback_id": CORRECTION_MODAL,
        "private_metadata": json.dumps(metadata | {"answer_id": answer_id})[:3000],
        "title": plain("Suggest a correction", MODAL_TITLE_LIMIT),
        "submit": plain("Send for review", MODAL_TITLE_LIMIT),
        "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "blocks": blocks,
    }


def document_options(documents: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The options of the document search (an external select), at most 100."""
    return {"options": [{"text": plain(title or doc_id, 75), "value": doc_id[:150]}
                        for doc_id, title in list(documents)[:100] if len(doc_id) <= 150]}


def edit_modal(correction: Any, metadata: dict[str, Any]) -> Block:
    """Edit-then-approve: the suggestion pre-filled, for a moderator to fix before approving."""
    text_element: Block = {"type": "plain_text_input", "action_id": TEXT_INPUT,
                           "multiline": True, "max_length": 3000}
    if getattr(correction, "text", None):
        text_element["initial_value"] = correction.text[:3000]
    source_element: Block = {"type": "plain_text_input", "action_id": SOURCE_INPUT,
                             "max_length": 500}
    if getattr(correction, "source_ref", None):
        source_element["initial_value"] = correction.source_ref[:500]
    return {
        "type": "modal",
        "callback_id": EDIT_MODAL,
        "private_metadata": json.dumps(metadata | {"correction_id": correction.id}),
        "title": plain(f"Edit correction #{correction.id}", MODAL_TITLE_LIMIT),
        "submit": plain("Approve", MODAL_TITLE_LIMIT),
        "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "blocks": [
            {"type": "input", "block_id": TEXT_BLOCK, "optional": True,
             "label": plain("Answer text"), "element": text_element},
            {"type": "input", "block_id": SOURCE_BLOCK, "optional": True,
             "label": plain("Source (URL or document id)"), "element": source_element},
        ],
    }


# -- moderation ---------------------------------------------------------------------------------


def review_value(kind: str, item_id: int) -> str:
    return json.dumps({"kind": kind, "id": item_id})


def correction_review(correction: Any, answer: Any | None) -> tuple[str, list[Block]]:
    """A pending correction for the review channel: question, old answer, proposed change."""
    question = getattr(answer, "question", "") if answer else ""
    old = getattr(answer, "answer_text", "") if answer else ""
    lines = [f"*Correction #{correction.id}* suggested by <@{escape(correction.user)}>"
             f" for answer #{correction.answer_id}"]
    blocks = [
        section("\n".join(lines)),
        section(f"*Question:*\n{safe(question, 2900)}"),
        section(f"*Current answer:*\n{safe(old, 2900)}"),
    ]
    change = []
    if getattr(correction, "text", None):
        change.append(f"*Proposed answer:*\n{safe(correction.text, 2700)}")
    if getattr(correction, "source_ref", None):
        change.append(f"*Proposed source:* {safe(correction.source_ref, 250)}")
    blocks.append(section("\n".join(change) or "_no change given_"))
    blocks.append(review_actions("correction", correction.id, "pending", f"review-correction-{correction.id}",
                                 edit=True))
    return fit(f"Correction #{correction.id} is waiting for review", blocks)


def _figures(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return "_not evaluated yet_"
    parts = []
    for key, value in list(evaluation.items())[:20]:
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)[:200]
        parts.append(f"• {escape(key)}: {escape(value)}")
    return "\n".join(parts)


def review_actions(kind: str, item_id: int, status: str, block_id: str, *, edit: bool = False) -> Block:
    """The decision buttons of a review item, the same on every surface (the review channel,
    App Home, `/askloop review`): a proposal that failed its evaluation offers "Apply anyway"
    behind a confirmation (an audited override) instead of Approve; an approved one, Apply."""
    value = review_value(kind, item_id)
    reject = button("Reject", REVIEW_REJECT, value, "danger")
    if kind == "correction":
        elements = [button("Approve", REVIEW_APPROVE, value, "primary"), reject]
        if edit:
            elements.append(button("Edit", REVIEW_EDIT, value))
        return {"type": "actions", "block_id": block_id, "elements": elements}
    if status == "approved":
        first = button("Apply", REVIEW_APPLY, value, "primary")
    elif status in {"failing", "pending"}:
        why = "failed the evaluation gate" if status == "failing" else "has not been evaluated"
        first = button("Apply anyway", REVIEW_OVERRIDE, value, "danger", confirm={
            "title": plain("Override the gate?", 100),
            "text": plain(f"Proposal #{item_id} {why}. Applying it anyway is recorded in the audit log "
                          "as an override. Apply it?", 300),
            "confirm": plain("Apply anyway", 30), "deny": plain("Cancel", 30)})
    else:
        first = button("Approve and apply", REVIEW_APPROVE, value, "primary")
    return {"type": "actions", "block_id": block_id, "elements": [first, reject]}


def proposal_review(proposal: Any) -> tuple[str, list[Block]]:
    """A proposal for the review channel: what would change and the evaluation figures."""
    from feedback.gate import render_evaluation

    status = getattr(proposal, "status", "pending")
    blocks = [
        section(f"*Proposal #{proposal.id}* ({escape(status)}) by "
                f"{escape(getattr(proposal, 'created_by', '') or 'the learning engine')}"),
        section(f"*What would change:*\n{safe(getattr(proposal, 'summary', ''), 2900)}"),
        section(f"*Evaluation:*\n{safe(render_evaluation(getattr(proposal, 'evaluation', None) or {}), 2900)}"),
    ]
    blocks.append(review_actions("proposal", proposal.id, status, f"review-proposal-{proposal.id}"))
    return fit(f"Proposal #{proposal.id} is waiting for review", blocks)


def decided(original: list[Block], verdict: str, moderator: str,
            at: datetime | None = None, note: str | None = None) -> tuple[str, list[Block]]:
    """The review message after a decision: buttons replaced by who decided and when."""
    kept = [b for b in original if b.get("type") != "actions"]
    line = f"*{escape(verdict)}* by <@{escape(moderator)}> on {when(at)}"
    if note:
        line += f"\n{safe(note, 500)}"
    return fit(f"{verdict} by a moderator", kept + [section(line)])


# -- App Home -----------------------------------------------------------------------------------


def home_view(*, is_moderator: bool, stats: dict[str, Any] | None, queue: Sequence[Any],
              versions: Sequence[Any], active: int | None) -> Block:
    blocks: list[Block] = [
        {"type": "header", "text": plain("askloop", 150)},
        section("Ask me anything in a channel with @askloop, in a DM, or with `/askloop`. "
                "React 👍/👎 to my answers; suggest corrections with ✏️."),
        {"type": "divider"},
        {"type": "header", "text": plain("Satisfaction", 150)},
        section(_figures(stats) if stats else "_no feedback yet_"),
    ]
    if is_moderator:
        blocks += [{"type": "divider"}, {"type": "header", "text": plain("Review queue", 150)}]
        if not queue:
            blocks.append(section("_Nothing waiting for review._"))
        for item in list(queue)[:10]:
            kind = item_kind(item)
            summary = getattr(item, "summary", None) or getattr(item, "text", None) \
                or getattr(item, "source_ref", None) or ""
            blocks.append({
                "type": "section",
                "text": mrkdwn(f"*{kind.title()} #{item.id}* ({escape(item.status)}): {safe(summary, 2500)}"),
            })
            blocks.append(review_actions(kind, item.id, item.status, f"home-{kind}-{item.id}"))
        blocks += [{"type": "divider"}, {"type": "header", "text": plain("Tuning versions", 150)}]
        if not versions:
            blocks.append(section("_No tuning version yet: answers come from the base index._"))
        for version in list(versions)[:10]:
            number = version.number
            mark = " (active)" if number == active else ""
            text = (f"*Version {number}*{mark} by {escape(getattr(version, 'created_by', ''))}"
                    f" on {when(getattr(version, 'created_at', None))}")
            block: Block = {"type": "section", "text": mrkdwn(text)}
            if number != active:
                block["accessory"] = button("Roll back to this", ROLLBACK, str(number), confirm={
                    "title": plain("Roll back?"),
                    "text": plain(f"Make version {number} the active one?", 300),
                    "confirm": plain("Roll back"), "deny": plain("Cancel")})
            blocks.append(block)
        if active is not None:
            blocks.append({"type": "section", "text": mrkdwn("*Base index* (no tuning)"),
                           "accessory": button("Roll back to this", ROLLBACK, "0", confirm={
                               "title": plain("Roll back?"),
                               "text": plain("Answer from the base index, without any tuning?", 300),
                               "confirm": plain("Roll back"), "deny": plain("Cancel")})})
    _, blocks = fit("", blocks[:100])
    return {"type": "home", "blocks": blocks}


def item_kind(item: Any) -> str:
    """'correction' or 'proposal' for an item of the review queue."""
    kind = getattr(item, "kind", None)
    if kind in {"correction", "proposal"}:
        return kind
    return "correction" if hasattr(item, "answer_id") else "proposal"


def queue_message(queue: Sequence[Any]) -> tuple[str, list[Block]]:
    """`/askloop review`: the queue as one ephemeral message with buttons."""
    if not queue:
        return notice_message("Nothing is waiting for review.")
    blocks: list[Block] = [section(f"*{len(queue)} item(s) waiting for review*")]
    for item in queue:
        kind = item_kind(item)
        summary = getattr(item, "summary", None) or getattr(item, "text", None) \
            or getattr(item, "source_ref", None) or ""
        blocks.append(section(f"*{kind.title()} #{item.id}* ({escape(item.status)}): {safe(summary, 2500)}"))
        blocks.append(review_actions(kind, item.id, item.status, f"queue-{kind}-{item.id}"))
    return fit(f"{len(queue)} item(s) waiting for review", blocks)
