"""The golden set: questions with the documents that answer them, which the evaluation gate replays."""

from __future__ import annotations

from sqlmodel import Session, select

from feedback import models as m
from feedback.errors import InvalidFeedback
from feedback.records import GoldenQuestion
from feedback.store.base import MAX_QUESTION, Database, audit, aware, user_text
from feedback.text import clean_text


def golden_record(r: m.GoldenQuestion) -> GoldenQuestion:
    assert r.id is not None
    return GoldenQuestion(r.id, r.question, list(r.doc_ids), r.added_by, r.origin, r.correction_id,
                          aware(r.created_at))


class GoldenSet:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, question: str, doc_ids: list[str], added_by: str, *, origin: str = "manual",
            correction_id: int | None = None) -> GoldenQuestion:
        """Add one golden question (the caller has checked that the documents exist)."""
        text = user_text(question, "the question", MAX_QUESTION)
        documents = [clean_text(d).strip() for d in doc_ids if d and clean_text(d).strip()]
        if not text or not documents:
            raise InvalidFeedback("a golden question needs the question and at least one document id")

        def work(session: Session) -> GoldenQuestion:
            row = m.GoldenQuestion(question=text, doc_ids=documents, added_by=added_by, origin=origin,
                                   correction_id=correction_id)
            session.add(row)
            session.flush()
            audit(session, added_by, "golden.add", "golden_question", row.id,
                  after={"question": text, "doc_ids": documents})
            return golden_record(row)

        return self.db.write(work)

    def all(self) -> list[GoldenQuestion]:
        with self.db.reading() as session:
            rows = session.exec(select(m.GoldenQuestion).order_by(m.GoldenQuestion.id)).all()  # type: ignore[arg-type]
            return [golden_record(r) for r in rows]
