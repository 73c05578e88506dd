"""Block Kit for the bot's answers and forms; the one module the Slack listeners build from.

An answer is the question (context), the answer text as Slack `markdown` blocks and at most one
`table` block (`markdown.py`: documents and chat models write Markdown, which mrkdwn would show
with raw pipes and asterisks), the sources it cites, how it was answered, and the feedback
buttons. Long text is split into several blocks rather than cut, and the whole message is kept
within a size budget (`elements.MESSAGE_BUDGET`): when the text does not fit, it is shortened
at a block boundary and says so. What moderators see is built in `review_blocks.py` and
re-exported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from bot.slack.elements import (  # noqa: F401  (re-exported: the listeners use kit.*)
    CORRECTION_MODAL,
    EDIT_MODAL,
    FEEDBACK_BUTTONS,
    MESSAGE_BUDGET,
    REVIEW_APPLY,
    REVIEW_APPROVE,
    REVIEW_EDIT,
    REVIEW_OVERRIDE,
    REVIEW_REJECT,
    ROLLBACK,
    SUGGEST,
    VOTE_DOWN,
    VOTE_UP,
    Block,
    block_size,
    button,
    context,
    fit,
    quote,
    section,
    size,
    when,
)
from bot.slack.markdown import pieces
from bot.slack.review_blocks import (  # noqa: F401
    correction_review,
    decided,
    home_view,
    item_kind,
    proposal_review,
    queue_message,
    review_actions,
    review_value,
)
from bot.slack.text import (  # noqa: F401  (escape: re-exported for the listeners' messages)
    MAX_CONTEXT_ELEMENTS,
    MODAL_TITLE_LIMIT,
    escape,
    link,
    neutralise,
    plain,
    safe,
)

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
ABSTAINED = "_I'm not confident enough to answer this one._"
SHORTENED = "_Shortened to fit in Slack; the sources have the full text._"

ANSWER_BUDGET = MESSAGE_BUDGET
QUESTION_LIMIT = 1000  # characters of the question shown above the answer
SOURCE_TITLE_LIMIT = 150
CLOSEST_SOURCES = 3  # an abstention lists this many near misses
NOTIFICATION_LIMIT = 1000  # the message's `text`: what notifications and screen readers show
_CITATION = re.compile(r"\[(\d{1,3})\]")


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


def is_native_feedback(block: Block) -> bool:
    """Whether `block` is the native feedback block (the one a workspace may refuse)."""
    return block.get("type") == "context_actions"


def cited(text: str, hits: Sequence[Any]) -> list[tuple[int, Any]]:
    """The sources the answer cites as [n], in number order (numbers without a source ignored)."""
    numbers = sorted({int(n) for n in _CITATION.findall(text or "") if 1 <= int(n) <= len(hits)})
    return [(n, hits[n - 1]) for n in numbers[: MAX_CONTEXT_ELEMENTS - 1]]


def source_lines(numbered: Sequence[tuple[int, Any]], title_limit: int = SOURCE_TITLE_LIMIT) -> list[str]:
    lines = []
    for number, hit in numbered:
        title = getattr(hit, "title", "") or getattr(hit, "doc_id", "")
        title = neutralise(title)[:title_limit]
        lines.append(f"[{number}] {link(getattr(hit, 'source', '') or '', title)}")
    return lines


def _frame(answer: Any, answer_id: int | None, native_feedback: bool, question: str | None,
           compact: bool) -> tuple[list[Block], list[Block]]:
    """The blocks around the answer text: (before it, after it)."""
    head = [context([f"❓ {safe(question, 300 if compact else QUESTION_LIMIT)}"])] if question else []
    hits = list(answer.hits)
    if answer.abstained:
        numbered = list(enumerate(hits[:CLOSEST_SOURCES], 1))
    else:
        numbered = cited(answer.text, hits)
    if compact:
        numbered = numbered[:CLOSEST_SOURCES]
    tail: list[Block] = [context([ABSTAINED])] if answer.abstained else []
    if numbered:
        label = "Closest sources" if answer.abstained else "Sources"
        tail.append(context([f"*{label}:*"] + source_lines(numbered, 60 if compact else SOURCE_TITLE_LIMIT)))
    version = answer.tuning_version
    how = "extractive" if getattr(answer, "generated_by", "extractive") == "extractive" else "generated"
    tail.append(context([
        (f"Answered with tuning version {version}" if version else "Answered from the base index")
        + f" · {how}" + (f" · answer #{answer_id}" if answer_id else "")
    ]))
    if answer_id is not None:
        tail.extend(feedback_blocks(answer_id, native_feedback))
    return head, tail


def answer_message(answer: Any, answer_id: int | None, *, native_feedback: bool = True,
                   question: str | None = None, budget: int = ANSWER_BUDGET) -> tuple[str, list[Block]]:
    """The threaded reply: the question, the answer, the sources it cites, the tuning version,
    feedback buttons, all within `budget` (see `elements.size`). An abstention says so plainly
    and shows the closest sources.

    The answer text fills what the frame leaves; a block that does not fit is shortened at a
    line or word boundary, and the blocks after it are left out, with a note saying so.
    """
    head, tail = _frame(answer, answer_id, native_feedback, question, compact=False)
    reserve = block_size(context([SHORTENED])) + 2
    if budget - size(head + tail) - reserve < budget // 3:  # a huge question or many sources
        head, tail = _frame(answer, answer_id, native_feedback, question, compact=True)
    room = budget - size(head + tail) - reserve
    body: list[Block] = []
    # every character takes at least a byte: text beyond `room` characters cannot fit anyway
    shortened = len(answer.text) > room
    for piece in pieces(answer.text[:room]):
        block, cut = piece.fit(room, block_size)
        if block is not None:
            body.append(block)
            room -= block_size(block)
        if block is None or cut:
            shortened = True
            break
    if shortened:
        body.append(context([SHORTENED]))
    if not body:
        body = [section(safe(answer.text, 500))]
    return fit(safe(answer.text, NOTIFICATION_LIMIT), head + body + tail, budget=budget)


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
        quote("Question", question, 2800),
        {
            "type": "input",
            "block_id": TEXT_BLOCK,
            "optional": True,
            "label": plain("A better answer"),
            "element": {"type": "plain_text_input", "action_id": TEXT_INPUT,
                        "multiline": True, "max_length": 3000},
        },
    ]
    options = [{"text": plain(title or doc_id, 75), "value": doc_id}
               for doc_id, title in list(sources)[:100] if 0 < len(doc_id) <= 150]
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
    return {"options": [{"text": plain(title or doc_id, 75), "value": doc_id}
                        for doc_id, title in list(documents)[:100] if 0 < len(doc_id) <= 150]}


def edit_modal(correction: Any, metadata: dict[str, Any]) -> Block:
    """Edit-then-approve: the suggestion pre-filled, for a moderator to fix before approving."""
    text_element: Block = {"type": "plain_text_input", "action_id": TEXT_INPUT,
                           "multiline": True, "max_length": 3000}
    if getattr(correction, "text", None):
        text_element["initial_value"] = neutralise(correction.text)[:3000]
    source_element: Block = {"type": "plain_text_input", "action_id": SOURCE_INPUT,
                             "max_length": 500}
    if getattr(correction, "source_ref", None):
        source_element["initial_value"] = neutralise(correction.source_ref)[:500]
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


