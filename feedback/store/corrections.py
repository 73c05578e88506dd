"""Corrections: a person's better answer text and/or better source for an answer, and its review.

Approving one that cites a document also adds a golden question (the answer's question → that
document), in the same transaction: every approved fix is then protected by the evaluation gate.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from sqlmodel import Session, select

from feedback import models as m
from feedback.errors import InvalidFeedback, InvalidState, NotFound, UnknownAnswer
from feedback.records import CorrectionRecord
from feedback.refs import correction_ref
from feedback.store.base import Database, answer_id_of, audit, aware, now, user_text, utc

MAX_SOURCE = 1000


def split_source(source_ref: str | None) -> tuple[str | None, str | None]:
    """(document id, url) of a stored source: `doc:ID` or a bare id is a document, an http(s)
    address a URL."""
    if not source_ref:
        return None, None
    if "://" in source_ref:
        return None, source_ref
    return (source_ref[4:] if source_ref.startswith("doc:") else source_ref), None


def check_correction(text: str | None, source_ref: str | None) -> tuple[str | None, str | None]:
    """The cleaned (text, source); refused when both are empty or either is malformed."""
    cleaned = user_text(text, "the correction")
    source = user_text(source_ref, "the source", MAX_SOURCE)
    if cleaned is None and source is None:
        raise InvalidFeedback("a correction needs better answer text, a source (a document or a URL), or both")
    if source is not None:
        if "://" in source:
            parsed = urlparse(source)
            if parsed.scheme not in {"http", "https"} or not parsed.netloc or any(c.isspace() for c in source):
                raise InvalidFeedback("a source URL must start with http:// or https:// and contain no spaces")
        elif source.startswith("doc:") and not source[4:].strip():
            raise InvalidFeedback("doc: needs a document id after it")
    return cleaned, source


def check_permalink(permalink: str | None) -> str | None:
    """A provenance link: an http(s) address without spaces, at most 2,000 characters."""
    if permalink is None or not permalink.strip():
        return None
    link = permalink.strip()
    parsed = urlparse(link)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or any(c.isspace() for c in link) \
            or len(link) > 2000:
        raise InvalidFeedback("a correction's link must be an http(s) address of at most 2,000 characters")
    return link


def _state(row: m.Correction) -> dict[str, Any]:
    return {"status": row.status, "text": row.text, "source_ref": row.source_ref}


def correction_record(row: m.Correction, question: str = "") -> CorrectionRecord:
    assert row.id is not None
    return CorrectionRecord(
        id=row.id,
        answer_id=row.answer_id,
        user=row.user_id,
        text=row.text,
        source_ref=row.source_ref,
        status=row.status,
        created_at=aware(row.created_at),
        decided_by=row.decided_by,
        decided_at=utc(row.decided_at),
        note=row.note,
        original_text=row.original_text,
        original_source_ref=row.original_source_ref,
        question=question,
        origin=row.origin,
        permalink=row.permalink,
    )


class Corrections:
    def __init__(self, database: Database) -> None:
        self.db = database

    def suggest(self, answer_id: object, user: str, *, text: str | None = None,
                source_ref: str | None = None, origin: str | None = None,
                permalink: str | None = None) -> CorrectionRecord:
        """Store a pending correction (the caller has resolved `source_ref` to a document id or
        URL), with its provenance: how it came in (`origin`) and the message it was suggested
        from (`permalink`, an http(s) link)."""
        number = answer_id_of(answer_id)
        cleaned, source = check_correction(text, source_ref)
        if not user:
            raise InvalidFeedback("a correction needs the user's id")
        link = check_permalink(permalink)

        def work(session: Session) -> CorrectionRecord:
            answer = session.get(m.Answer, number)
            if answer is None:
                raise UnknownAnswer(number)
            row = m.Correction(answer_id=number, user_id=user[:200], text=cleaned, source_ref=source,
                               origin=(origin or None) and origin[:40], permalink=link)
            session.add(row)
            session.flush()
            after = _state(row) | ({"origin": row.origin} if row.origin else {}) | \
                ({"permalink": row.permalink} if row.permalink else {})
            audit(session, user, "correction.suggest", "correction", row.id, after=after)
            return correction_record(row, answer.question)

        return self.db.write(work)

    def _locked(self, session: Session, correction_id: int) -> m.Correction:
        row = session.exec(select(m.Correction).where(m.Correction.id == correction_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"there is no correction {correction_ref(correction_id)}")
        if row.status != "pending":
            raise InvalidState(f"correction {correction_ref(correction_id)} is already {row.status}")
        return row

    def get(self, correction_id: int) -> CorrectionRecord:
        with self.db.reading() as session:
            row = session.get(m.Correction, correction_id)
            if row is None:
                raise NotFound(f"there is no correction {correction_ref(correction_id)}")
            answer = session.get(m.Answer, row.answer_id)
            return correction_record(row, answer.question if answer else "")

    def find(self, *, status: str | None = None, answer_id: int | None = None) -> list[CorrectionRecord]:
        with self.db.reading() as session:
            query = select(m.Correction, m.Answer.question).join(m.Answer).order_by(m.Correction.id)  # type: ignore[arg-type]
            if status:
                query = query.where(m.Correction.status == status)
            if answer_id is not None:
                query = query.where(m.Correction.answer_id == answer_id)
            return [correction_record(c, q) for c, q in session.exec(query).all()]

    def approve(self, correction_id: int, moderator: str, *, note: str | None = None,
                text: str | None = None, source_ref: str | None = None) -> CorrectionRecord:
        """Approve (or edit, then approve). A cited document also becomes a golden question.

        Approval only makes the correction available to the next Proposal; nothing changes in
        answers until that proposal passes the gate and is applied.
        """
        edited = text is not None or source_ref is not None
        note = user_text(note, "the note")

        def work(session: Session) -> CorrectionRecord:
            row = self._locked(session, correction_id)
            before = _state(row)
            if edited:
                new_text, new_ref = check_correction(
                    text if text is not None else row.text,
                    source_ref if source_ref is not None else row.source_ref,
                )
                row.original_text, row.original_source_ref = row.text, row.source_ref
                row.text, row.source_ref = new_text, new_ref
            row.status, row.decided_by, row.decided_at, row.note = "approved", moderator, now(), note
            session.add(row)
            session.flush()
            answer = session.get(m.Answer, row.answer_id)
            assert answer is not None
            audit(session, moderator, "correction.edit_approve" if edited else "correction.approve",
                  "correction", row.id, before=before, after=_state(row), note=note)
            doc_id, _url = split_source(row.source_ref)
            if doc_id:
                golden = m.GoldenQuestion(question=answer.question, doc_ids=[doc_id], added_by=moderator,
                                          origin="correction", correction_id=row.id)
                session.add(golden)
                session.flush()
                audit(session, moderator, "golden.add", "golden_question", golden.id,
                      after={"question": answer.question, "doc_ids": [doc_id], "correction_id": row.id})
            return correction_record(row, answer.question)

        return self.db.write(work)

    def reject(self, correction_id: int, moderator: str, *, note: str | None = None) -> CorrectionRecord:
        note = user_text(note, "the note")

        def work(session: Session) -> CorrectionRecord:
            row = self._locked(session, correction_id)
            before = _state(row)
            row.status, row.decided_by, row.decided_at, row.note = "rejected", moderator, now(), note
            session.add(row)
            session.flush()
            audit(session, moderator, "correction.reject", "correction", row.id, before=before,
                  after=_state(row), note=note)
            answer = session.get(m.Answer, row.answer_id)
            return correction_record(row, answer.question if answer else "")

        return self.db.write(work)
