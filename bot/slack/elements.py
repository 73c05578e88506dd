"""Block Kit pieces every surface is built from, and the size budget every message keeps.

Builders return plain dicts (what the Web API takes). Text from people or documents enters a
block only through the helpers here and in `text.py`: `section`/`context` take mrkdwn that the
caller escaped, `quote` and `code` show text literally (rich_text: no formatting, no mentions,
no links can be faked in them), `plain` makes plain_text.

Slack rejects a message whose blocks are too big in total with `msg_blocks_too_long`, although
every block is within its own limit. The figure is undocumented: reports put it near 13,200
characters of markdown text, and rejections were seen at 11,341 characters of text spread over
rich_text, section and header blocks, whose JSON is larger. `size` therefore measures what is
sent (UTF-8 bytes of the compact JSON, which holds whether Slack counts bytes or characters)
plus an allowance for the `block_id` Slack adds to blocks that have none, and `fit` keeps every
message within `MESSAGE_BUDGET` of that measure.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from bot.slack.text import (
    CONTEXT_TEXT_LIMIT,
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MESSAGE_TEXT_LIMIT,
    SECTION_TEXT_LIMIT,
    literal,
    mrkdwn,
    plain,
    trim,
)

Block = dict[str, Any]

MESSAGE_BUDGET = 11_000  # bytes by `size`; Slack's (undocumented) limit is about 12-13k
BLOCK_ID_ALLOWANCE = 20  # `"block_id":"xxxxx",` that Slack adds to a block without one
QUOTE_LIMIT = 2900  # characters of quoted text per field (rich_text has no documented cap)

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


def section(text: str) -> Block:
    """A mrkdwn section; `text` must already be escaped (it is ours or went through `escape`)."""
    return {"type": "section", "text": mrkdwn(trim(text, SECTION_TEXT_LIMIT) or " ")}


def plain_section(text: object, limit: int = SECTION_TEXT_LIMIT) -> Block:
    """A section of plain text: nothing in it is formatting, a mention or a link."""
    return {"type": "section", "text": plain(text, limit)}


def context(texts: Iterable[str]) -> Block:
    elements = [mrkdwn(trim(t, CONTEXT_TEXT_LIMIT)) for t in texts if t]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS] or [mrkdwn(" ")]}


def _rich_text(text: str, style: dict[str, bool] | None = None) -> Block:
    element: Block = {"type": "text", "text": text or " "}
    if style:
        element["style"] = style
    return element


def quote(label: str | None, text: object, limit: int = QUOTE_LIMIT) -> Block:
    """`text` from a person or a document, shown literally in a quote under a bold label.

    rich_text text elements are never parsed, so "*Approved* by @mod" in a suggestion stays
    those characters inside the quote; it cannot look like the bot's own verdict line.
    """
    elements: list[Block] = []
    if label:
        elements.append({"type": "rich_text_section",
                         "elements": [_rich_text(label, {"bold": True})]})
    body = trim(literal(text).strip(), limit, entities=False) or "—"
    elements.append({"type": "rich_text_quote", "elements": [_rich_text(body)]})
    return {"type": "rich_text", "elements": elements}


def code(label: str | None, text: object, limit: int = QUOTE_LIMIT) -> Block:
    """Like `quote`, as preformatted text (JSON, diffs)."""
    elements: list[Block] = []
    if label:
        elements.append({"type": "rich_text_section",
                         "elements": [_rich_text(label, {"bold": True})]})
    body = trim(literal(text), limit, entities=False) or " "
    elements.append({"type": "rich_text_preformatted", "elements": [_rich_text(body)]})
    return {"type": "rich_text", "elements": elements}


def button(label: str, action_id: str, value: str, style: str | None = None,
           confirm: Block | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(label), "action_id": action_id,
                      "value": value[:2000]}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def when(at: datetime | None = None) -> str:
    """A timestamp every reader sees in their own time zone (with a UTC fallback text)."""
    at = at or datetime.now(timezone.utc)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


# -- the size budget ----------------------------------------------------------------------------


def size(blocks: list[Block]) -> int:
    """What `blocks` count towards Slack's total: compact JSON bytes plus block_id allowances."""
    raw = json.dumps(blocks, ensure_ascii=False, separators=(",", ":")).encode()
    return len(raw) + BLOCK_ID_ALLOWANCE * sum(1 for b in blocks if "block_id" not in b)


def block_size(block: Block) -> int:
    """The share of one block in `size` (with its separating comma)."""
    return size([block]) - 1


def _texts(blocks: list[Block]) -> Iterator[tuple[dict[str, Any], str, bool]]:
    """Every shortenable text: (holder, key, holds entities)."""
    for block in blocks:
        kind = block.get("type")
        if kind == "markdown":
            yield block, "text", True
        elif kind == "section" and isinstance(block.get("text"), dict):
            yield block["text"], "text", block["text"].get("type") == "mrkdwn"
        elif kind == "context":
            for element in block.get("elements", []):
                if element.get("type") in {"mrkdwn", "plain_text"}:
                    yield element, "text", element["type"] == "mrkdwn"
        elif kind == "rich_text":
            for part in block.get("elements", []):
                for leaf in part.get("elements", []):
                    if leaf.get("type") == "text":
                        yield leaf, "text", False


def shrink(blocks: list[Block], budget: int) -> list[Block]:
    """`blocks` within `budget`: the longest texts shortened first, then trailing blocks dropped
    (never the buttons). Returns a copy; the input is left alone."""
    if size(blocks) <= budget:
        return blocks
    blocks = copy.deepcopy(blocks)
    for _ in range(40):  # each round shortens the longest text by at least what is over
        over = size(blocks) - budget
        if over <= 0:
            return blocks
        holder, key, entities = max(_texts(blocks), key=lambda t: len(t[0][t[1]]),
                                    default=({"text": ""}, "text", False))
        value = holder[key]
        if len(value) < 100:
            break
        holder[key] = trim(value, max(len(value) - over - 16, len(value) // 2), entities=entities)
    while size(blocks) > budget and len(blocks) > 1:
        droppable = [i for i, b in enumerate(blocks) if b.get("type") not in {"actions", "context_actions"}]
        if not droppable:
            break
        del blocks[droppable[-1]]
    return blocks


def fit(text: str, blocks: list[Block], *, budget: int | None = MESSAGE_BUDGET,
        max_blocks: int = MAX_BLOCKS) -> tuple[str, list[Block]]:
    """The message cut to Slack's limits: at most `max_blocks` blocks (a note replaces the
    rest), the notification text at most 40,000 characters, the blocks within `budget`."""
    text = trim(text, MESSAGE_TEXT_LIMIT) or " "
    if len(blocks) > max_blocks:
        hidden = len(blocks) - (max_blocks - 1)
        blocks = blocks[: max_blocks - 1] + [context([f"_{hidden} more item(s) not shown._"])]
    if budget is not None:
        blocks = shrink(blocks, budget)
    return text, blocks
