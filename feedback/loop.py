"""`FeedbackLoop`: the one API every interface calls for the loop's use cases.

Slack, the CLI, the shell, the background worker and the evaluation harness all go through
these methods, so each rule of the loop is written once:

| use case | method | the rule it keeps |
|---|---|---|
| answer and record | `answer` | retrieval with the live tuning; the answer, its sources and the version are recorded |
| link the posted message | `link_message` | reactions find their answer, on every replica |
| vote | `vote`, `toggle_vote`, `withdraw_vote` | one vote per user per answer; claim and write in one transaction; late actions ignored |
| correct | `suggest_correction` | the cited document must exist (resolved from path, URL or title) |
| decide | `decide`, `apply`, `rollback`, `flag` | moderators only, refusals audited; failing proposals only by override; atomic apply |
| learn and evaluate | `learn`, `evaluate` | one build → proposal → gate path, de-duplicated by what was learned |
| report | `stats`, `gauges`, `knowledge_gaps`, `review_queue`, `audit`, … | one definition of every figure |

Decisions and learning live in `feedback.decisions` and `feedback.learn_loop`; this class wires
them to the store, the knowledge base and the configuration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from feedback.config import LoopConfig
from feedback.decisions import Decision, Decisions
from feedback.errors import InvalidFeedback, UnknownAnswer
from feedback.events import LoopEvents, NoEvents, VoteKind
from feedback.gaps import GapReport, group_gaps
from feedback.learn_loop import Learner, LearnOutcome
from feedback.live import LiveTuning
from feedback.records import (
    AnswerRecord,
    AuditRecord,
    CorrectionRecord,
    GoldenQuestion,
    ProposalRecord,
    ReviewPage,
    StoreStats,
    VersionRecord,
    VoteRecord,
    VoteResult,
)
from feedback.refs import Ref
from feedback.store import DriftDay, FeedbackStore
from retrieval.answer import Answer, extractive_answer, llm_answer
from retrieval.conversation import ReadInContext, Turn, read_in_context
from retrieval.documents import DocumentCatalog, Resolution
from retrieval.search import EmptyKnowledgeBase, KnowledgeBase, QuestionError

log = logging.getLogger("askloop.feedback")

# Earlier exchanges a chat model sees with a follow-up (the latest ones).
MAX_HISTORY = 6


def turn_of(record: AnswerRecord) -> Turn:
    """An earlier answer of a conversation, as retrieval reads it."""
    return Turn(asked=record.as_asked, searched=record.question, answer=record.answer_text,
                abstained=record.abstained)


@dataclass
class Answered:
    """An answer as shown, and the id it was recorded under (None when not recorded)."""

    answer: Answer
    answer_id: int | None


class UnknownDocument(InvalidFeedback):
    """A correction or golden question cites a document the knowledge base does not have."""

    def __init__(self, resolution: Resolution) -> None:
        if resolution.ambiguous:
            names = ", ".join(d.doc_id for d in resolution.candidates)
            message = f"{resolution.reference!r} matches several documents ({names}): name one of them exactly"
        else:
            message = f"no document in the knowledge base matches {resolution.reference!r}"
            if resolution.candidates:
                closest = "; ".join(f"{d.title or d.doc_id} ({d.doc_id})" for d in resolution.candidates)
                message += f"; closest: {closest}"
        super().__init__(message)
        self.resolution = resolution


class FeedbackLoop:
    def __init__(
        self,
        store: FeedbackStore,
        knowledge_base: KnowledgeBase | Callable[[], KnowledgeBase],
        config: LoopConfig | None = None,
        *,
        chat_model: Any = None,
        events: LoopEvents | None = None,
        is_moderator: Callable[[str], bool] | None = None,
    ) -> None:
        """`knowledge_base` may be a callable, so that commands and health checks that never search
        do not open the vector store. `is_moderator` adds moderators the interface knows of (a
        Slack usergroup) to `config.moderators`. `chat_model`: a LangChain chat model (or a
        callable returning one, or None for extractive answers)."""
        self.store = store
        self.config = config or LoopConfig()
        self._kb = knowledge_base
        self._chat_model = chat_model
        self.events: LoopEvents = events or NoEvents()
        self._extra_moderator = is_moderator
        self.live = LiveTuning(store.proposals, self.config.tuning_cache_seconds,
                               lambda: self.knowledge_base.embedder)
        self.decisions = Decisions(store, self.is_moderator, self.live)
        self.learner = Learner(store, lambda: self.knowledge_base, self.config)
        self._catalog: DocumentCatalog | None = None

    # -- wiring -------------------------------------------------------------------------------

    @property
    def knowledge_base(self) -> KnowledgeBase:
        if not isinstance(self._kb, KnowledgeBase):
            self._kb = self._kb()
        return self._kb

    @property
    def chat_model(self) -> Any:
        if callable(self._chat_model) and not hasattr(self._chat_model, "invoke"):
            self._chat_model = self._chat_model()
        return self._chat_model

    @property
    def catalog(self) -> DocumentCatalog:
        if self._catalog is None:
            self._catalog = DocumentCatalog(self.knowledge_base.store)
        return self._catalog

    def _report(self, hook: str, *args: Any) -> None:
        try:
            getattr(self.events, hook)(*args)
        except Exception:  # counting must never break a use case
            log.debug("event hook %s failed", hook, exc_info=True)

    def is_moderator(self, user: str) -> bool:
        if not user:
            return False
        if user in self.config.moderators or (self.config.local_owner and user == self.config.local_owner):
            return True
        return bool(self._extra_moderator and self._extra_moderator(user))

    def close(self) -> None:
        self.store.close()

    # -- answering ----------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        *,
        asker: str,
        origin: str,
        channel: str | None = None,
        thread_ts: str | None = None,
        k: int | None = None,
        record: bool = True,
        vector: np.ndarray | None = None,
        earlier: Sequence[AnswerRecord] = (),
    ) -> Answered:
        """Answer from the knowledge base with the live tuning, and record it for feedback
        (`record=False` for replays that must not look like questions people asked). `vector`:
        the question's embedding when the caller already has it (batch replays).

        `earlier`: the conversation's answers so far, oldest first (`thread_answers`). The
        question is then a follow-up, searched alone or fused with the conversation's topic
        (the rule is `retrieval.conversation`'s), and a chat model gets the conversation. The
        record keeps what was searched as its question, the words as written and the answer it
        was read with, so feedback on the follow-up teaches what retrieval really answered.
        """
        tuning = self.live.current()
        started = time.perf_counter()
        k = k or self.config.top_k
        turns = [turn_of(earlier_answer) for earlier_answer in earlier]
        read: ReadInContext | None = None
        try:
            kb = self.knowledge_base
            if turns and vector is None:
                read = read_in_context(kb, question, turns, k, tuning, self.config.answer_threshold)
                result = read.result
            elif vector is None:
                result = kb.search(question, k, tuning)
            else:
                result = kb.search_vector(question, vector, k, tuning)
        except (QuestionError, EmptyKnowledgeBase):
            raise
        except Exception:
            self._report("retrieved", time.perf_counter() - started, True)
            raise
        self._report("retrieved", time.perf_counter() - started, False)
        fused = read is not None and read.fused
        asked = question.strip() if fused else result.question
        threshold = self.config.answer_threshold
        model = self.chat_model
        if model is not None:
            answer = llm_answer(model, asked, result.hits, threshold, result.tuning_version,
                                history=turns[-MAX_HISTORY:])
        else:
            answer = extractive_answer(asked, result.hits, threshold, result.tuning_version)
        if read is not None and read.fused:
            answer.extras.update(searched=result.question, read_with=read.topic)
            log.info("follow-up %r read with the thread's topic: %s", asked[:80], read.why)
        if not record:
            return Answered(answer, None)
        context = earlier[-1].id if fused else None
        recorded = self.store.answers.record(
            question=result.question, asker=asker, origin=origin, hits=answer.hits, answer_text=answer.text,
            abstained=answer.abstained, tuning_version=answer.tuning_version, channel=channel,
            thread_ts=thread_ts, question_vector=result.vector,
            vector_model=self.knowledge_base.embedder.model_id, asked=asked if fused else None,
            context_answer_id=context,
        )
        self._report("answered", origin, answer.abstained)
        answer.extras["answer_id"] = recorded.id
        return Answered(answer, recorded.id)

    def get_answer(self, answer_id: object) -> AnswerRecord:
        return self.store.answers.get(answer_id)

    def link_message(self, answer_id: int, channel: str, message_ts: str) -> None:
        self.store.answers.link_message(answer_id, channel, message_ts)

    def answer_for_message(self, channel: str, message_ts: str) -> AnswerRecord | None:
        return self.store.answers.for_message(channel, message_ts)

    def answered_in_thread(self, channel: str, thread_ts: str) -> bool:
        return self.store.answers.answered_in_thread(channel, thread_ts)

    def thread_answers(self, channel: str, thread_ts: str) -> list[AnswerRecord]:
        return self.store.answers.in_thread(channel, thread_ts)

    # -- votes --------------------------------------------------------------------------------

    def _voted(self, result: VoteResult, source: str) -> VoteResult:
        if result.changed:
            kind: VoteKind = "removed" if result.action == "remove" else ("up" if result.value > 0 else "down")
            self._report("voted", kind, None if kind == "removed" else result.counted, source)
        return result

    def vote(self, answer_id: object, user: str, value: int, *, source: str = "cli", reason: str | None = None,
             at: datetime | None = None, delivery: str | None = None) -> VoteResult:
        """Cast (or replace) `user`'s 👍 (+1) / 👎 (-1) on an answer."""
        return self._voted(self.store.votes.apply(answer_id, user, "cast", value, source=source, reason=reason,
                                                  at=at, delivery=delivery), source)

    def toggle_vote(self, answer_id: object, user: str, value: int, *, source: str, at: datetime | None = None,
                    delivery: str | None = None) -> VoteResult:
        """A vote button: pressing the vote already in force withdraws it."""
        return self._voted(self.store.votes.apply(answer_id, user, "toggle", value, source=source, at=at,
                                                  delivery=delivery), source)

    def withdraw_vote(self, answer_id: object, user: str, value: int | None = None, *, source: str = "cli",
                      at: datetime | None = None, delivery: str | None = None) -> VoteResult:
        """Withdraw the user's vote (only if it is `value`, when given: a removed 👍 reaction)."""
        return self._voted(self.store.votes.apply(answer_id, user, "withdraw", value, source=source, at=at,
                                                  delivery=delivery), source)

    def votes_for(self, answer_id: object) -> list[VoteRecord]:
        return self.store.votes.for_answer(answer_id)

    # -- corrections --------------------------------------------------------------------------

    def resolve_source(self, reference: str | None, *, text: str | None = None,
                       base_dir: Path | None = None) -> str | None:
        """What a correction's source is stored as: the id of the document it names, or an
        outside URL (allowed only beside corrected text, as that text's provenance)."""
        if reference is None or not reference.strip():
            return None
        resolution = self.catalog.resolve(reference, base_dir)
        if resolution.doc is not None:
            return resolution.doc.doc_id
        if "://" in reference and (text or "").strip() and not resolution.ambiguous:
            return reference.strip()
        raise UnknownDocument(resolution)

    def suggest_correction(self, answer_id: object, user: str, *, text: str | None = None,
                           source: str | None = None, origin: str = "cli",
                           base_dir: Path | None = None, permalink: str | None = None) -> CorrectionRecord:
        """A pending correction: better text and/or the document that answers the question.
        `origin` (how it came in) and `permalink` (the message it was suggested from, e.g. a
        reply in a conversation) are kept as its provenance, for the moderators who review it."""
        self.store.answers.get(answer_id)  # unknown answers are refused before anything else
        resolved = self.resolve_source(source, text=text, base_dir=base_dir)
        record = self.store.corrections.suggest(answer_id, user, text=text, source_ref=resolved,
                                                origin=origin, permalink=permalink)
        self._report("corrected", origin)
        return record

    def shown_documents(self, record: AnswerRecord) -> list[tuple[str, str]]:
        """(doc id, title) of the knowledge-base documents an answer showed: what a correction
        may pick from (corrected passages that live in a tuning are left out)."""
        documents = self.catalog.documents()
        return [(s.doc_id, s.title) for s in record.shown if s.doc_id in documents]

    def correction(self, correction_id: int) -> CorrectionRecord:
        return self.store.corrections.get(correction_id)

    def corrections(self, *, status: str | None = None, answer_id: int | None = None) -> list[CorrectionRecord]:
        return self.store.corrections.find(status=status, answer_id=answer_id)

    # -- decisions ----------------------------------------------------------------------------

    def decide(self, ref: str | Ref, moderator: str, approve: bool, *, note: str | None = None,
               text: str | None = None, source: str | None = None, override: bool = False,
               apply: bool = True, base_dir: Path | None = None) -> Decision:
        """Approve or reject a correction (approve with `text`/`source`: edit, then approve) or a
        proposal (approving applies it at once unless `apply=False`; a proposal that failed its
        evaluation only with `override`, which is audited)."""
        # "" clears the source when editing; anything else must name a document (or a URL beside text)
        resolved = self.resolve_source(source, text=text, base_dir=base_dir) if source else source
        return self.decisions.decide(ref, moderator, approve, note=note, text=text, source=resolved,
                                     override=override, apply=apply)

    def apply(self, ref: str | Ref, moderator: str) -> Decision:
        """Apply a proposal that was approved without being applied."""
        return self.decisions.apply(ref, moderator)

    def rollback(self, version: int, moderator: str) -> VersionRecord | None:
        return self.decisions.rollback(version, moderator)

    def flag(self, user: str, moderator: str, reason: str = "") -> None:
        self.decisions.flag(user, moderator, reason)

    def unflag(self, user: str, moderator: str) -> None:
        self.decisions.unflag(user, moderator)

    def require_moderator(self, user: str, action: str, target: str = "") -> None:
        """Refuse (and audit the refusal) unless `user` may moderate."""
        self.decisions.require(user, action, target)

    # -- learning -----------------------------------------------------------------------------

    def learn(self, created_by: str, strategy: str = "askloop", **options: Any) -> LearnOutcome:
        """Build a proposal from validated feedback, record it and run the evaluation gate; a
        proposal identical to the live version or to one already open is not made twice."""
        return self.learner.learn(created_by, strategy, **options)

    def evaluate(self, proposal_id: int, **options: Any) -> ProposalRecord:
        return self.learner.evaluate(proposal_id, **options)

    # -- golden set ---------------------------------------------------------------------------

    def add_golden(self, question: str, documents: list[str], user: str, *,
                   base_dir: Path | None = None) -> GoldenQuestion:
        """A golden question; every document must resolve (id, path, URL or title)."""
        doc_ids = []
        for reference in documents:
            resolution = self.catalog.resolve(reference, base_dir)
            if resolution.doc is None:
                raise UnknownDocument(resolution)
            doc_ids.append(resolution.doc.doc_id)
        return self.store.golden.add(question, doc_ids, user)

    def golden_set(self) -> list[GoldenQuestion]:
        return self.store.golden.all()

    # -- reading ------------------------------------------------------------------------------

    def review_queue(self, page: int = 1, per_page: int = 20) -> ReviewPage:
        return self.store.reports.review_queue(page, per_page)

    def proposal(self, proposal_id: int) -> ProposalRecord:
        return self.store.proposals.get(proposal_id)

    def proposals(self, *, status: str | None = None) -> list[ProposalRecord]:
        return self.store.proposals.find(status=status)

    def versions(self) -> list[VersionRecord]:
        return self.store.proposals.versions()

    def active_version_number(self) -> int | None:
        return self.store.proposals.active_version_number()

    def stats(self, *, now: datetime | None = None) -> StoreStats:
        return self.store.reports.stats(now=now)

    def drift(self, days: int = 7, now: datetime | None = None, threshold: float | None = None) -> list[DriftDay]:
        """Per day, the share of questions whose best match scored below `threshold` (default:
        the answer threshold): a rising share says the knowledge base misses what people ask."""
        limit = self.config.answer_threshold if threshold is None else threshold
        return self.store.reports.drift_by_day(limit, days, now)

    def knowledge_gaps(self, days: int | None = None, *, now: datetime | None = None) -> GapReport:
        """What people asked that the knowledge base could not answer, in the last `days` days
        (default `config.gap_days`), grouped by similarity (`feedback.gaps`)."""
        days = self.config.gap_days if days is None else max(1, days)
        since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
        return group_gaps(self.store.reports.gap_signals(since), similarity=self.config.gap_similarity, days=days)

    def gauges(self, window_days: int = 7) -> dict[str, float]:
        """The figures every replica exports (satisfaction by the one definition, pending work,
        today's drift, the active version, the knowledge gaps)."""
        figures = self.store.reports.gauges(self.config.answer_threshold, window_days)
        gaps = self.knowledge_gaps()
        figures["knowledge_gaps"] = float(len(gaps.gaps))
        figures["knowledge_gap_questions"] = float(gaps.questions)
        return figures

    def audit(self, since: datetime | None = None, limit: int = 200, *, action: str | None = None) -> list[AuditRecord]:
        return self.store.audit.events(since, limit, action=action)

    def export_rows(self) -> Iterator[dict[str, Any]]:
        return self.store.reports.export_rows()

    def flagged_users(self) -> list[dict[str, Any]]:
        return self.store.users.flagged()

    # -- deliveries ---------------------------------------------------------------------------

    def claim(self, key: str) -> bool:
        """True the first time a delivery key is seen by any replica (replays return False)."""
        return self.store.deliveries.claim(key)

    def release(self, key: str) -> bool:
        return self.store.deliveries.release(key)

    def prune_deliveries(self, older_than: timedelta | None = None) -> int:
        return self.store.deliveries.prune(older_than) if older_than else self.store.deliveries.prune()


__all__ = ["Answered", "Decision", "FeedbackLoop", "GapReport", "LearnOutcome", "UnknownAnswer", "UnknownDocument"]
