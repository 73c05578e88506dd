"""Answer text from retrieved passages: extractive by default, a chat model when configured.

The extractive answer never says anything the knowledge base does not say; below the relevance
threshold it admits there is no good match and shows the closest sources instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retrieval.chunking import titled_section
from retrieval.markdown_blocks import Block, fence_parts, parse
from retrieval.types import Hit

if TYPE_CHECKING:
    from retrieval.conversation import Turn

log = logging.getLogger(__name__)


class ChatModelError(RuntimeError):
    """The configured chat model cannot be set up (unknown provider, missing package, no key)."""

PASSAGE_CHARS = 600
SECOND_PASSAGE_MARGIN = 0.03
NO_MATCH = "I couldn't find a good match for that in the knowledge base."

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
_RUNS = re.compile(r"[ \t]+")
ELLIPSIS = "…"


def _tidy(block: Block) -> str:
    """A block as shown: runs of spaces in prose as one space; code exactly as written (its
    indentation is its meaning), a code block the chunk left open closed again."""
    if block.kind == "fence":
        opening, body, closing = fence_parts(block)
        return "\n".join([opening, *body, closing])
    if block.kind in ("code", "html"):
        return block.text
    if block.kind in ("list", "quote"):  # keep each line's indentation: it nests the items
        lines = block.text.split("\n")
        return "\n".join(line[: len(line) - len(line.lstrip())] + _RUNS.sub(" ", line.strip()) for line in lines)
    return "\n".join(_RUNS.sub(" ", line.strip()) for line in block.text.split("\n"))


def _cut_prose(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a sentence end (or a word, with an ellipsis)."""
    if len(text) <= limit:
        return text
    cut = 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() > limit:
            break
        cut = match.start() + 1
    if cut >= limit // 3:
        return text[:cut].rstrip()
    space = text.rfind(" ", 0, limit)
    return text[: space if space > 0 else limit].rstrip(" ,;:") + ELLIPSIS


def _cut(block: Block, text: str, limit: int) -> str:
    """The start of a block that does not fit, still valid Markdown: a table's header and whole
    rows, a code block's first whole lines in their fences, a list's first whole items, a
    paragraph up to a sentence end. Whatever was left out is marked with a line "…"."""
    if block.kind == "table":
        lines = text.split("\n")
        kept = lines[:3]  # header, delimiter, and at least one row even if that is long
        for row in lines[3:]:
            if len("\n".join(kept + [row])) > limit:
                break
            kept.append(row)
        return "\n".join(kept) + f"\n\n{ELLIPSIS}"
    if block.kind == "fence":
        opening, body, closing = fence_parts(block)
        kept = body[:1]
        for line in body[1:]:
            if len(opening) + len("\n".join(kept + [line])) + len(closing) + 2 > limit:
                break
            kept.append(line)
        return "\n".join([opening, *kept, closing]) + f"\n\n{ELLIPSIS}"
    if block.kind == "code":
        lines = text.split("\n")
        kept = lines[:1]
        for line in lines[1:]:
            if len("\n".join(kept + [line])) > limit:
                break
            kept.append(line)
        return "\n".join(kept) + f"\n\n{ELLIPSIS}"
    if block.kind == "list" and len(block.items) > 1:
        items = [_tidy(Block("list", item)) for item in block.items]
        kept = []
        for item in items:
            if kept and len("\n".join(kept + [item])) > limit:
                break
            kept.append(item)
        if len(kept) > 1 or len(kept[0]) <= limit:
            return "\n".join(kept) + f"\n\n{ELLIPSIS}"
        text = kept[0]
    return _cut_prose(text, limit)


def trim_passage(text: str, limit: int = PASSAGE_CHARS) -> str:
    """At most about `limit` characters of `text`, as valid Markdown: whole blocks while they
    fit; then the next block cut where it stays whole (see `_cut`), if much room is left or
    nothing was shown yet. A table row or a code line is never cut, so a passage that is a
    table may run past `limit` by the length of its first row."""
    shown: list[str] = []
    used = 0
    for block in parse(text.strip("\n")):
        tidy = _tidy(block)
        gap = 2 if shown else 0
        if used + gap + len(tidy) <= limit:
            shown.append(tidy)
            used += gap + len(tidy)
            continue
        room = limit - used - gap
        if not shown or room >= limit // 3:
            cut = _cut(block, tidy, room)
            if not shown or len(cut) <= room + len(ELLIPSIS) + 2:
                shown.append(cut)
        break
    return "\n\n".join(shown)


def cited(passage: str, number: int) -> str:
    """`passage` with its citation: after the last sentence, or on a line of its own when the
    passage ends in a table, a list or code (where " [1]" would become part of a row, an item
    or a broken closing fence)."""
    blocks = parse(passage)
    if blocks and blocks[-1].kind != "paragraph":
        return f"{passage}\n\n[{number}]"
    return f"{passage} [{number}]"


def source_label(hit: Hit) -> str:
    """The hit's title and section, the title said once ("Holidays › Sick leave")."""
    return titled_section(hit.title, hit.section)


@dataclass
class Answer:
    question: str
    text: str
    hits: list[Hit]
    abstained: bool
    tuning_version: int | None = None
    generated_by: str = "extractive"
    extras: dict[str, Any] = field(default_factory=dict)

    def sources(self) -> list[dict[str, object]]:
        return [hit.as_dict() | {"passage": trim_passage(hit.passage)} for hit in self.hits]

    def as_dict(self) -> dict[str, object]:
        return {"answer": self.text, "sources": self.sources(), "abstained": self.abstained}


def extractive_answer(
    question: str, hits: list[Hit], threshold: float, tuning_version: int | None = None
) -> Answer:
    if not hits or hits[0].score < threshold:
        return Answer(question, NO_MATCH, hits, True, tuning_version)
    parts = [cited(trim_passage(hits[0].passage), 1)]
    # A second passage only when it is nearly as relevant and from another document.
    if len(hits) > 1 and hits[1].score >= max(threshold, hits[0].score - SECOND_PASSAGE_MARGIN):
        parts.append(cited(trim_passage(hits[1].passage, PASSAGE_CHARS // 2), 2))
    return Answer(question, "\n\n".join(parts), hits, False, tuning_version)


SYSTEM_PROMPT = (
    "You answer questions for a team using ONLY the numbered passages from its knowledge base. "
    "Cite the passages you use as [1], [2]. If the passages do not contain the answer, say so "
    "plainly instead of guessing. Be concise."
)


def _context(hits: list[Hit]) -> str:
    return "\n\n".join(
        f"[{i}] {source_label(hit)}\n{trim_passage(hit.passage, 1500)}" for i, hit in enumerate(hits, 1)
    )


HISTORY_ANSWER_CHARS = 1500  # of each earlier answer a chat model is shown


def llm_answer(
    chat_model: Any,
    question: str,
    hits: list[Hit],
    threshold: float,
    tuning_version: int | None = None,
    history: Sequence["Turn"] = (),
) -> Answer:
    """A chat model writes the answer from the passages only; abstentions never reach it.

    `history`: the conversation so far (a follow-up in a thread), given to the model as the
    earlier questions and answers, so "how long is it valid?" is read as the conversation means
    it; the passages were retrieved for the follow-up read in that context.

    If the model fails (network, quota, timeout) the question still gets the extractive answer
    from the same passages, with the failure noted in `extras["llm_error"]`: the passages were
    found, and a grounded quote beats an error message.
    """
    if not hits or hits[0].score < threshold:
        return Answer(question, NO_MATCH, hits, True, tuning_version)
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

    messages: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
    for turn in history:
        messages.append(HumanMessage(turn.asked))
        messages.append(AIMessage(trim_passage(turn.answer, HISTORY_ANSWER_CHARS) or NO_MATCH))
    messages.append(HumanMessage(f"Passages:\n\n{_context(hits)}\n\nQuestion: {question}"))
    try:
        reply = chat_model.invoke(messages)
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
    except Exception as exc:
        log.warning("chat model failed (%s: %s); answering extractively", exc.__class__.__name__, exc)
        answer = extractive_answer(question, hits, threshold, tuning_version)
        answer.extras["llm_error"] = f"{exc.__class__.__name__}: {exc}"
        return answer
    if not content.strip():
        answer = extractive_answer(question, hits, threshold, tuning_version)
        answer.extras["llm_error"] = "the chat model returned an empty answer"
        return answer
    return Answer(question, content.strip(), hits, False, tuning_version, generated_by="llm")


def load_chat_model(spec: str) -> Any:
    """`provider:model` (e.g. `openai:gpt-4o-mini`) through LangChain's `init_chat_model`."""
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(spec)
    except Exception as exc:  # ImportError (provider package missing), ValueError (unknown), ...
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise ChatModelError(f"cannot set up the chat model {spec!r} (ASKLOOP_LLM): {first_line}") from exc
