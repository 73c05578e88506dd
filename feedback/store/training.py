"""What may teach the learning engine: counted votes of users not flagged, approved corrections,
and which 👎 are doubtful (their proposed fix was rejected). Also the backlog since a moment,
which tells the background worker when learning is due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from feedback import models as m
from feedback.records import TrainingCorrection, TrainingFeedback, TrainingVote
from feedback.store.base import Database, aware, unpack_vector, utc
from feedback.store.corrections import split_source


class TrainingData:
    def __init__(self, database: Database) -> None:
        self.db = database

    def feedback(self, *, since: datetime | None = None) -> TrainingFeedback:
        """Counted votes (of users not flagged now) on answers that were not abstentions, and approved
        corrections: what may teach."""
        since = utc(since)
        with self.db.reading() as session:
            flagged = select(m.FlaggedUser.user_id)
            vq = (
                select(m.Vote, m.Answer)
                .join(m.Answer, m.Answer.id == m.Vote.answer_id)  # type: ignore[arg-type]
                .where(m.Vote.counted == True, m.Vote.user_id.not_in(flagged))  # type: ignore[attr-defined]  # noqa: E712
                # A vote on an abstention says the knowledge base has a gap, not that the closest
                # document shown was good or bad: it feeds the gap report, never a document.
                .where(m.Answer.abstained == False)  # noqa: E712
                .order_by(m.Vote.id)  # type: ignore[arg-type]
            )
            if since is not None:
                vq = vq.where(m.Vote.updated_at >= since)
            votes = session.exec(vq).all()
            cq = (
                select(m.Correction, m.Answer)
                .join(m.Answer, m.Answer.id == m.Correction.answer_id)  # type: ignore[arg-type]
                .where(m.Correction.status == "approved")
                .order_by(m.Correction.id)  # type: ignore[arg-type]
            )
            if since is not None:
                cq = cq.where(m.Correction.decided_at >= since)  # type: ignore[operator]
            corrections = session.exec(cq).all()
            shown = self.db.shown_for(session, [a.id for _, a in votes if a.id] + [a.id for _, a in corrections if a.id])
            return TrainingFeedback(
                votes=[
                    TrainingVote(
                        answer_id=a.id or 0, question=a.question, asker=a.asker, user=v.user_id,
                        value=v.value, weight=v.weight, shown=shown[a.id or 0], at=aware(v.updated_at),
                        tuning_version=a.tuning_version, question_vector=unpack_vector(a.question_vector),
                        vector_model=a.vector_model,
                    )
                    for v, a in votes
                ],
                corrections=[
                    TrainingCorrection(
                        correction_id=c.id or 0, answer_id=a.id or 0, question=a.question, user=c.user_id,
                        doc_id=split_source(c.source_ref)[0], url=split_source(c.source_ref)[1], text=c.text,
                        at=aware(c.decided_at), shown=shown[a.id or 0],
                        question_vector=unpack_vector(a.question_vector), vector_model=a.vector_model,
                    )
                    for c, a in corrections
                ],
            )

    def doubtful_votes(self) -> frozenset[tuple[int, str]]:
        """(answer id, user) of corrections a moderator rejected: that user's 👎 there is doubtful."""
        with self.db.reading() as session:
            rows = session.exec(
                select(m.Correction.answer_id, m.Correction.user_id).where(m.Correction.status == "rejected")
            ).all()
            return frozenset((int(a), str(u)) for a, u in rows)

    def new_inputs(self, since: datetime | None) -> tuple[int, int]:
        """(counted vote actions, approved corrections) since `since` (everything when None)."""
        with self.db.reading() as session:
            votes = select(func.count()).select_from(m.VoteEvent).where(
                m.VoteEvent.counted.is_(True), m.VoteEvent.value != 0  # type: ignore[attr-defined]
            )
            corrections = select(func.count()).select_from(m.Correction).where(m.Correction.status == "approved")
            if since is not None:
                votes = votes.where(m.VoteEvent.at > since)  # type: ignore[arg-type]
                corrections = corrections.where(m.Correction.decided_at > since)  # type: ignore[operator]
            return int(session.exec(votes).one()), int(session.exec(corrections).one())
