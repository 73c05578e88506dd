"""Follow-ups: a question asked in a conversation is searched with the conversation's topic in view.

"How long is it valid?" means nothing alone; after "how do I connect to the VPN?" it means "how
long is the VPN configuration valid?". Embedding models have no memory, so the follow-up is
searched twice — alone, and *fused* with the conversation's topic (the earlier question as it
was searched, followed by the follow-up) — and one of the two results is kept:

1. Both put the same document first: the follow-up alone, when it is good enough to answer by
   itself (it then stands on its own, and feedback on it teaches its own words); else the fused
   search, which lifts the passage the follow-up is about within the topic's document.
2. They disagree: the follow-up alone wins only when it clearly prefers another document — its
   best document scores more than `margin` above the fused search's best document *in the
   follow-up's own search* (a new topic: "how do I submit expenses?" after a VPN question).
   A fused search always scores high on the topic's own document (the topic's words match it),
   so comparing the two searches' best scores would keep every conversation on its first
   topic; comparing within the follow-up's own scores does not have that bias.
3. A follow-up that refers back ("is *it* paid?", "and on my phone?", three words or fewer)
   needs a wider margin to leave the topic (`refers_back_margin`).

The two searches embed both texts in one model call. The kept result's `question` is the text
that was searched (the fused text when fused): what an answer records, so feedback on a
follow-up teaches the question retrieval really answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.search import KnowledgeBase, SearchResult, check_question
from retrieval.tuning import Tuning

# A fused text longer than this keeps only the conversation's first and latest questions.
TOPIC_CHARS = 300
MARGIN = 0.15
REFERS_BACK_MARGIN = 0.30
SHORT_FOLLOW_UP_WORDS = 3

_WORD = re.compile(r"[a-z0-9']+")
# Words that point back at something said before. "this"/"that" are left out: as determiners
# ("this week") they start new topics as often as they refer back.
_BACK_REFERENCES = {"it", "its", "it's", "they", "them", "their", "theirs", "one", "ones", "same"}
_CONTINUATIONS = ("and ", "but ", "also ", "so ", "or ", "what about", "how about", "what if", "and?")


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation: what was asked, what was searched, what was said."""

    asked: str  # as the person wrote it
    searched: str  # what retrieval searched (the fused text for a follow-up read in context)
    answer: str = ""
    abstained: bool = False


@dataclass(frozen=True)
class ReadInContext:
    """The search kept for a follow-up. `fused`: it was searched with the topic; `topic`: the
    earlier question it was read with (None when alone); `why`: the rule that decided."""

    result: SearchResult
    fused: bool
    topic: str | None
    why: str


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def refers_back(text: str) -> bool:
    """Whether a follow-up leans on what was said before: a pronoun that points back, a
    continuation ("and…", "what about…"), or three words or fewer."""
    lowered = " ".join(text.lower().split())
    found = words(lowered)
    if len(found) <= SHORT_FOLLOW_UP_WORDS:
        return True
    return lowered.startswith(_CONTINUATIONS) or any(w in _BACK_REFERENCES for w in found)


def topic_of(turns: Sequence[Turn]) -> str:
    """The text a follow-up is fused with: the latest question as it was searched (which
    already carries its own topic), or, when that has grown long, the conversation's first and
    latest questions as asked."""
    latest = turns[-1]
    if len(latest.searched) <= TOPIC_CHARS:
        return latest.searched
    first = turns[0].asked
    return latest.asked if first == latest.asked else f"{first} {latest.asked}"


def fuse(follow_up: str, turns: Sequence[Turn]) -> str:
    return f"{topic_of(turns)} {follow_up}".strip()


def choose(alone: SearchResult, fused: SearchResult, *, threshold: float, leans_back: bool,
           margin: float = MARGIN, refers_back_margin: float = REFERS_BACK_MARGIN) -> tuple[bool, str]:
    """(use the fused search, why): the rule of this module's docstring, on two results."""
    if not fused.hits:
        return False, "the fused search found nothing"
    if not alone.hits:
        return True, "the follow-up alone found nothing"
    best_alone, best_fused = alone.hits[0], fused.hits[0]
    if best_alone.doc_id == best_fused.doc_id:
        if best_alone.score >= threshold:
            return False, "both agree and the follow-up answers on its own"
        return True, "both agree; the follow-up alone is too vague to answer"
    scores = {h.doc_id: h.score for h in alone.hits}
    # a document the follow-up's search did not even return scores at most its last hit
    fused_choice = scores.get(best_fused.doc_id, alone.hits[-1].score)
    gap = best_alone.score - fused_choice
    allowed = refers_back_margin if leans_back else margin
    if gap > allowed:
        return False, f"the follow-up alone prefers another document by {gap:.2f} (> {allowed:.2f}): a new topic"
    return True, f"the follow-up alone prefers another document by only {gap:.2f} (≤ {allowed:.2f})"


def read_in_context(kb: KnowledgeBase, follow_up: str, turns: Sequence[Turn], k: int,
                    tuning: Tuning | None, threshold: float) -> ReadInContext:
    """Search `follow_up` after `turns` (oldest first): alone, or fused with their topic."""
    text = check_question(follow_up, kb.max_question_chars)
    if not turns:
        return ReadInContext(kb.search(text, k, tuning), False, None, "no earlier question")
    topic = topic_of(turns)
    fused_text = fuse(text, turns)
    if len(fused_text) > kb.max_question_chars:
        return ReadInContext(kb.search(text, k, tuning), False, None, "too long to fuse")
    vectors = kb.embedder.encode([text, fused_text])
    alone = kb.search_vector(text, vectors[0], k, tuning)
    fused = kb.search_vector(fused_text, vectors[1], k, tuning)
    use_fused, why = choose(alone, fused, threshold=threshold, leans_back=refers_back(text))
    if use_fused:
        return ReadInContext(fused, True, topic, why)
    return ReadInContext(alone, False, None, why)
