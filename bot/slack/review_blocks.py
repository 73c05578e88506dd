"""What moderators see: review-channel posts, the decision line, the queue, App Home.

Text that people wrote (questions, suggested answers and sources, notes) is shown in quotes
(`elements.quote`) or as plain text, never as mrkdwn: a suggestion reading "*Approved* by @mod"
must not look like the verdict line the bot adds after a real decision, which is the only
formatted, mentioning, dated line in the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.slack.elements import (
    MESSAGE_BUDGET,
    REVIEW_APPLY,
    REVIEW_APPROVE,
    REVIEW_EDIT,
    REVIEW_OVERRIDE,
    REVIEW_REJECT,
    ROLLBACK,
    Block,
    button,
    code,
    context,
    fit,
    plain_section,
    quote,
    section,
    size,
    when,
)
from bot.slack.text import MAX_BLOCKS, MAX_VIEW_BLOCKS, escape, plain

SUMMARY_LIMIT = 300  # characters of an item's text in lists (the review post has the whole)


def review_value(kind: str, item_id: int) -> str:
    return json.dumps({"kind": kind, "id": item_id})


def _one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip()


def correction_review(correction: Any, answer: Any | None) -> tuple[str, list[Block]]:
    """A pending correction for the review channel: question, old answer, proposed change."""
    question = getattr(answer, "question", "") if answer else ""
    old = getattr(answer, "answer_text", "") if answer else ""
    blocks = [
        section(f"*Correction #{correction.id}* suggested by <@{escape(correction.user)}>"
                f" for answer #{correction.answer_id}"),
        quote("Question", question, 1500),
        quote("Current answer", old, 2500),
    ]
    if getattr(correction, "text", None):
        blocks.append(quote("Proposed answer", correction.text, 2500))
    if getattr(correction, "source_ref", None):
        blocks.append(quote("Proposed source", correction.source_ref, 500))
    if not (getattr(correction, "text", None) or getattr(correction, "source_ref", None)):
        blocks.append(section("_no change given_"))
    blocks.append(review_actions("correction", correction.id, "pending", f"review-correction-{correction.id}",
                                 edit=True))
    return fit(f"Correction #{correction.id} is waiting for review", blocks)


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


def figures(evaluation: dict[str, Any] | None) -> str:
    """Evaluation or stats figures as an escaped mrkdwn list."""
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


def proposal_review(proposal: Any) -> tuple[str, list[Block]]:
    """A proposal for the review channel: what would change and the evaluation figures."""
    from feedback.gate import render_evaluation

    status = getattr(proposal, "status", "pending")
    blocks = [
        section(f"*Proposal #{proposal.id}* ({escape(status)}) by "
                f"{escape(getattr(proposal, 'created_by', '') or 'the learning engine')}"),
        quote("What would change", getattr(proposal, "summary", ""), 2900),
        code("Evaluation", render_evaluation(getattr(proposal, "evaluation", None) or {}), 2800),
    ]
    blocks.append(review_actions("proposal", proposal.id, status, f"review-proposal-{proposal.id}"))
    return fit(f"Proposal #{proposal.id} is waiting for review", blocks)


def decided(original: list[Block], verdict: str, moderator: str,
            at: datetime | None = None, note: str | None = None) -> tuple[str, list[Block]]:
    """The review message after a decision: buttons replaced by who decided and when."""
    kept = [b for b in original if b.get("type") != "actions"]
    kept.append(section(f"*{escape(verdict)}* by <@{escape(moderator)}> on {when(at)}"))
    if note:
        kept.append(quote("Note", note, 500))
    return fit(f"{verdict} by a moderator", kept)


def item_kind(item: Any) -> str:
    """'correction' or 'proposal' for an item of the review queue."""
    kind = getattr(item, "kind", None)
    if kind in {"correction", "proposal"}:
        return kind
    return "correction" if hasattr(item, "answer_id") else "proposal"


def _item_line(item: Any) -> Block:
    """One queue item on one plain-text line: nothing in a suggestion can format or mention."""
    kind = item_kind(item)
    summary = getattr(item, "summary", None) or getattr(item, "text", None) \
        or getattr(item, "source_ref", None) or ""
    status = getattr(item, "status", "")
    return plain_section(f"{kind.title()} #{item.id}{f' ({status})' if status else ''}: {_one_line(summary)}",
                         len(kind) + 26 + SUMMARY_LIMIT)


def _decision_buttons(item: Any, block_id: str) -> Block:
    return review_actions(item_kind(item), item.id, getattr(item, "status", "pending"), block_id)


def home_view(*, is_moderator: bool, stats: dict[str, Any] | None, queue: Sequence[Any],
              versions: Sequence[Any], active: int | None) -> Block:
    blocks: list[Block] = [
        {"type": "header", "text": plain("askloop", 150)},
        section("Ask me anything in a channel with @askloop, in a DM, or with `/askloop`. "
                "React 👍/👎 to my answers; suggest corrections with ✏️."),
        {"type": "divider"},
        {"type": "header", "text": plain("Satisfaction", 150)},
        section(figures(stats) if stats else "_no feedback yet_"),
    ]
    if is_moderator:
        blocks += [{"type": "divider"}, {"type": "header", "text": plain("Review queue", 150)}]
        if not queue:
            blocks.append(section("_Nothing waiting for review._"))
        for item in list(queue)[:10]:
            blocks.append(_item_line(item))
            blocks.append(_decision_buttons(item, f"home-{item_kind(item)}-{item.id}"))
        blocks += [{"type": "divider"}, {"type": "header", "text": plain("Tuning versions", 150)}]
        if not versions:
            blocks.append(section("_No tuning version yet: answers come from the base index._"))
        for version in list(versions)[:10]:
            number = version.number
            mark = " (active)" if number == active else ""
            text = (f"*Version {number}*{mark} by {escape(getattr(version, 'created_by', ''))}"
                    f" on {when(getattr(version, 'created_at', None))}")
            block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
            if number != active:
                block["accessory"] = button("Roll back to this", ROLLBACK, str(number), confirm={
                    "title": plain("Roll back?"),
                    "text": plain(f"Make version {number} the active one?", 300),
                    "confirm": plain("Roll back"), "deny": plain("Cancel")})
            blocks.append(block)
        if active is not None:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Base index* (no tuning)"},
                           "accessory": button("Roll back to this", ROLLBACK, "0", confirm={
                               "title": plain("Roll back?"),
                               "text": plain("Answer from the base index, without any tuning?", 300),
                               "confirm": plain("Roll back"), "deny": plain("Cancel")})})
    _, blocks = fit("", blocks, budget=None, max_blocks=MAX_VIEW_BLOCKS)
    return {"type": "home", "blocks": blocks}


def queue_message(queue: Sequence[Any]) -> tuple[str, list[Block]]:
    """`/askloop review`: the queue as one ephemeral message with buttons, as many items as
    fit in a message (each with its buttons), and how many more are waiting."""
    if not queue:
        text = "Nothing is waiting for review."
        return fit(text, [section(text)])
    blocks: list[Block] = [section(f"*{len(queue)} item(s) waiting for review*")]
    shown = 0
    for item in queue:
        pair = [_item_line(item), _decision_buttons(item, f"queue-{item_kind(item)}-{item.id}")]
        if len(blocks) + len(pair) >= MAX_BLOCKS or size(blocks + pair) > MESSAGE_BUDGET - 200:
            break
        blocks += pair
        shown += 1
    if shown < len(queue):
        blocks.append(context([f"_{len(queue) - shown} more item(s) not shown._"]))
    return fit(f"{len(queue)} item(s) waiting for review", blocks)
