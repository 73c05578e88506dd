"""Answers: what the bot said, to whom, where, with which sources and which tuning version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from feedback import models as m
from feedback.errors import InvalidFeedback, UnknownAnswer
from feedback.records import AnswerRecord, ShownDoc
from feedback.store.base import MAX_QUESTION, Database, answer_id_of, aware, pack_vector, shown_doc, user_text
from feedback.text import clean_text


class ShownHit(Protocol):
    """What an answer shows of a retrieved document (retrieval's `Hit` fits)."""

    @property
    def doc_id(self) -> str: ...

    @property
    def score(self) -> float: ...


def answer_record(row: m.Answer, shown: Sequence[ShownDoc]) -> AnswerRecord:
    assert row.id is not None
    return AnswerRecord(
        id=row.id,
        question=row.question,
        asker=row.asker,
        origin=row.origin,
        created_at=aware(row.created_at),
        tuning_version=row.tuning_version,
        abstained=row.abstained,
        answer_text=row.answer_text,
        shown=sorted(shown, key=lambda s: s.rank),
        channel=row.channel,
        thread_ts=row.thread_ts,
        message_ts=row.message_ts,
        asked=row.asked,
        context_answer_id=row.context_answer_id,
    )


def _clean(value: Any, limit: int = 500) -> str:
    return clean_text(str(value or ""))[:limit]


class Answers:
    def __init__(self, database: Database) -> None:
        self.db = database

    def record(
        self,
        *,
        question: str,
        asker: str,
        origin: str,
        hits: Sequence[ShownHit],
        answer_text: str,
        abstained: bool,
        tuning_version: int | None,
        channel: str | None = None,
        thread_ts: str | None = None,
        question_vector: np.ndarray | None = None,
        vector_model: str | None = None,
        asked: str | None = None,
        context_answer_id: int | None = None,
    ) -> AnswerRecord:
        """Record one answer and the documents it showed.

        `question` is what retrieval searched; for a follow-up read with its thread that is the
        follow-up fused with the thread's topic, `asked` the words as written and
        `context_answer_id` the earlier answer it was read with (so feedback on the follow-up
        teaches the question that was really answered). `question_vector` is the raw embedder
        vector the answer was retrieved with (before any learned query adapter) and
        `vector_model` the embedder's `model_id`: kept so that learning from this answer's
        feedback need not embed the question again.
        """
        text = user_text(question, "the question", MAX_QUESTION)
        if text is None:
            raise InvalidFeedback("cannot record an answer to an empty question")
        as_written = user_text(asked, "the question", MAX_QUESTION) if asked is not None else None
        if as_written == text:
            as_written = None
        if not asker:
            raise InvalidFeedback("an answer needs the asker's user id")
        packed, model = pack_vector(question_vector, vector_model)

        def work(session: Session) -> AnswerRecord:
            row = m.Answer(
                question=text,
                asker=asker[:200],
                origin=(origin or "unknown")[:40],
                channel=channel,
                thread_ts=thread_ts,
                tuning_version=tuning_version,
                abstained=abstained,
                answer_text=clean_text(answer_text or ""),
                question_vector=packed,
                vector_model=model,
                asked=as_written,
                context_answer_id=context_answer_id,
            )
            session.add(row)
            session.flush()
            assert row.id is not None
            shown = [
                m.ShownSource(
                    answer_id=row.id,
                    rank=rank,
                    doc_id=_clean(hit.doc_id),
                    chunk_id=_clean(getattr(hit, "chunk_id", "")),
                    title=_clean(getattr(hit, "title", ""), 2000),
                    source=_clean(getattr(hit, "source", ""), 2000),
                    score=float(hit.score),
                    base_score=float(getattr(hit, "base_score", 0.0) or 0.0),
                )
                for rank, hit in enumerate(hits, 1)
            ]
            session.add_all(shown)
            session.flush()
            return answer_record(row, [shown_doc(s) for s in shown])

        return self.db.write(work)

    def get(self, answer_id: object) -> AnswerRecord:
        number = answer_id_of(answer_id)
        with self.db.reading() as session:
            row = session.get(m.Answer, number)
            if row is None:
                raise UnknownAnswer(number)
            return answer_record(row, self.db.shown_for(session, [number])[number])

    def link_message(self, answer_id: object, channel: str, message_ts: str) -> None:
        """Remember which Slack message carries this answer, so reactions find it."""
        number = answer_id_of(answer_id)

        def work(session: Session) -> None:
            row = session.get(m.Answer, number)
            if row is None:
                raise UnknownAnswer(number)
            row.channel, row.message_ts = channel, message_ts
            session.add(row)
            session.flush()

        try:
            self.db.write(work)
        except IntegrityError:
            raise InvalidFeedback(f"message {message_ts} in {channel} already belongs to another answer") from None

    def for_message(self, channel: str, message_ts: str) -> AnswerRecord | None:
        with self.db.reading() as session:
            row = session.exec(
                select(m.Answer).where(m.Answer.channel == channel, m.Answer.message_ts == message_ts)
            ).first()
            if row is None or row.id is None:
                return None
            return answer_record(row, self.db.shown_for(session, [row.id])[row.id])

    def in_thread(self, channel: str, thread_ts: str) -> list[AnswerRecord]:
        """The answers posted in one Slack thread, oldest first (the thread's conversation so far).

        `thread_ts` is the thread's root: the question's ts for a top-level mention, DM or
        `/askloop`, the parent's ts for a question asked inside a thread. Only answers that
        reached Slack count (their message is linked), not ones whose post failed.
        """
        if not channel or not thread_ts:
            return []
        with self.db.reading() as session:
            rows = session.exec(
                select(m.Answer)
                .where(m.Answer.channel == channel, m.Answer.thread_ts == thread_ts,
                       m.Answer.message_ts.is_not(None))  # type: ignore[union-attr]
                .order_by(m.Answer.id)  # type: ignore[arg-type]
                .limit(50)
            ).all()
            shown = self.db.shown_for(session, [r.id for r in rows if r.id is not None])
            return [answer_record(r, shown[r.id]) for r in rows if r.id is not None]

    def answered_in_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether an answer of ours was posted in this Slack thread (by any replica)."""
        if not channel or not thread_ts:
            return False
        with self.db.reading() as session:
            found = session.exec(
                select(m.Answer.id)
                .where(m.Answer.channel == channel, m.Answer.thread_ts == thread_ts,
                       m.Answer.message_ts.is_not(None))  # type: ignore[union-attr]
                .limit(1)
            ).first()
            return found is not None

    def recent(self, *, limit: int = 50, offset: int = 0) -> list[AnswerRecord]:
        """Most recent first."""
        with self.db.reading() as session:
            rows = session.exec(
                select(m.Answer).order_by(m.Answer.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
            ).all()
            shown = self.db.shown_for(session, [r.id for r in rows if r.id is not None])
            return [answer_record(r, shown[r.id]) for r in rows if r.id is not None]
