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


def trim_passage(text: str, limit: int = PASSAGE_CHARS) -> str:
    """At most `limit` characters, cut at a sentence end (or a word, with an ellipsis)."""
    text = re.sub(r"[ \t]+", " ", text.strip())
    text = re.sub(r"\n{3,}", "\n\n", text)
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
    return text[: space if space > 0 else limit].rstrip(" ,;:") + "…"


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
    parts = [f"{trim_passage(hits[0].passage)} [1]"]
    # A second passage only when it is nearly as relevant and from another document.
    if len(hits) > 1 and hits[1].score >= max(threshold, hits[0].score - SECOND_PASSAGE_MARGIN):
        parts.append(f"{trim_passage(hits[1].passage, PASSAGE_CHARS // 2)} [2]")
    return Answer(question, "\n\n".join(parts), hits, False, tuning_version)


SYSTEM_PROMPT = (
    "You answer questions for a team using ONLY the numbered passages from its knowledge base. "
    "Cite the passages you use as [1], [2]. If the passages do not contain the answer, say so "
    "plainly instead of guessing. Be concise."
)


def _context(hits: list[Hit]) -> str:
    return "\n\n".join(
        f"[{i}] {hit.title}\n{trim_passage(hit.passage, 1500)}" for i, hit in enumerate(hits, 1)
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
