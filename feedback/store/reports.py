"""Figures read from the feedback tables: satisfaction, the review queue, drift, the export.

**Satisfaction** has one definition, used by `askloop stats`, the App Home and the
`askloop_satisfaction_rate` gauge alike: the share of 👍 among the votes in force (one per person
per answer, the latest), cast or changed in the window, by people who are not flagged — each vote
counts once, whatever its learning weight, because the question is "were people helped?", not
"how much may this vote teach?".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, or_
from sqlmodel import Session, col, select

from feedback import models as m
from feedback.records import GapSignal, ReviewItem, ReviewPage, StoreStats, WindowStats
from feedback.refs import correction_ref, proposal_ref
from feedback.store.base import Database, aware, unpack_vector, utc
from feedback.store.proposals import OPEN_PROPOSAL_STATES

STATS_WINDOWS: tuple[tuple[str, timedelta | None], ...] = (
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
    ("all", None),
)


@dataclass(frozen=True)
class DriftDay:
    """Drift: the share of questions whose best match scored below the answer threshold, per day.
    A rising share says "add documents" long before anyone files a complaint."""

    day: date
    questions: int
    below_threshold: int

    @property
    def share(self) -> float:
        return self.below_threshold / self.questions if self.questions else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"day": self.day.isoformat(), "share": round(self.share, 4)}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Reports:
    def __init__(self, database: Database) -> None:
        self.db = database

    def _votes(self, session: Session, since: datetime | None) -> tuple[int, int]:
        """(👍, 👎) among votes in force by people not flagged, cast or changed since `since`."""
        query = (
            select(m.Vote.value, func.count())
            .where(col(m.Vote.user_id).not_in(select(m.FlaggedUser.user_id)))
            .group_by(col(m.Vote.value))
        )
        if since is not None:
            query = query.where(m.Vote.updated_at >= since)
        counts = dict(session.exec(query).all())
        return int(counts.get(1, 0)), int(counts.get(-1, 0))

    def satisfaction(self, since: datetime | None) -> tuple[float | None, int]:
        """(share of 👍, number of votes) by the one definition above; None when nobody voted."""
        with self.db.reading() as session:
            up, down = self._votes(session, since)
        return (up / (up + down) if up + down else None), up + down

    def stats(self, *, now: datetime | None = None) -> StoreStats:
        moment = utc(now) or _now()
        windows: list[WindowStats] = []
        with self.db.reading() as session:
            for name, span in STATS_WINDOWS:
                since = None if span is None else moment - span
                answers = select(func.count(), func.sum(case((col(m.Answer.abstained).is_(True), 1), else_=0)))
                answers = answers.select_from(m.Answer)
                if since is not None:
                    answers = answers.where(m.Answer.created_at >= since)
                total, abstained = session.exec(answers).one()
                up, down = self._votes(session, since)
                windows.append(WindowStats(name, int(total or 0), int(abstained or 0), up, down))

            def count(model: Any, *where: Any) -> int:
                return int(session.exec(select(func.count()).select_from(model).where(*where)).one())

            return StoreStats(
                windows=windows,
                pending_corrections=count(m.Correction, m.Correction.status == "pending"),
                open_proposals=count(m.Proposal, m.Proposal.status.in_(OPEN_PROPOSAL_STATES)),  # type: ignore[attr-defined]
                active_version=session.exec(select(m.ActiveVersion.number).where(m.ActiveVersion.id == 1)).first(),
                versions=count(m.TuningVersion),
                flagged_users=count(m.FlaggedUser),
                golden_questions=count(m.GoldenQuestion),
            )

    def gap_signals(self, since: datetime | None, limit: int = 5000) -> list[GapSignal]:
        """Answers asked since `since` that are gap signals by the rule of `feedback.gaps`: voted
        abstentions and 👎 answers (votes in force, by people not flagged) that no pending or
        approved correction addresses; the most recent `limit` of them."""
        flagged = select(m.FlaggedUser.user_id)
        votes = (
            select(
                m.Vote.answer_id,
                func.sum(case((col(m.Vote.value) > 0, 1), else_=0)).label("up"),
                func.sum(case((col(m.Vote.value) < 0, 1), else_=0)).label("down"),
            )
            .where(col(m.Vote.user_id).not_in(flagged))
            .group_by(col(m.Vote.answer_id))
            .subquery()
        )
        addressed = select(m.Correction.answer_id).where(col(m.Correction.status).in_(("pending", "approved")))
        query = (
            select(m.Answer.id, m.Answer.question, m.Answer.asker, m.Answer.created_at,  # type: ignore[call-overload]
                   m.Answer.abstained, votes.c.up, votes.c.down, m.Answer.question_vector, m.Answer.vector_model)
            .join(votes, votes.c.answer_id == m.Answer.id)  # type: ignore[arg-type]
            .where(or_(col(m.Answer.abstained).is_(True), votes.c.down > 0))
            .where(col(m.Answer.id).not_in(addressed))
            .order_by(col(m.Answer.id).desc())
            .limit(max(1, limit))
        )
        start = utc(since)
        if start is not None:
            query = query.where(m.Answer.created_at >= start)
        with self.db.reading() as session:
            rows = session.exec(query).all()
        return [
            GapSignal(answer_id=int(i), question=q, asker=a, asked_at=aware(at), abstained=bool(ab), up=int(up or 0),
                      down=int(down or 0), question_vector=unpack_vector(vec), vector_model=model)
            for i, q, a, at, ab, up, down, vec, model in rows
        ]

    def review_queue(self, page: int = 1, per_page: int = 20) -> ReviewPage:
        """Pending corrections and open proposals (approved but not applied included), oldest first."""
        page, per_page = max(1, page), max(1, min(per_page, 200))
        items: list[ReviewItem] = []
        with self.db.reading() as session:
            for c, question in session.exec(
                select(m.Correction, m.Answer.question).join(m.Answer).where(m.Correction.status == "pending")
            ).all():
                what = " · ".join(part for part in (f"text: {c.text}" if c.text else "",
                                                    f"source: {c.source_ref}" if c.source_ref else "") if part)
                items.append(ReviewItem(correction_ref(c.id or 0), "correction", c.id or 0, c.status,
                                        f"on “{question}” — {what}", c.user_id, aware(c.created_at)))
            for p in session.exec(select(m.Proposal).where(m.Proposal.status.in_(OPEN_PROPOSAL_STATES))).all():  # type: ignore[attr-defined]
                items.append(ReviewItem(proposal_ref(p.id or 0), "proposal", p.id or 0, p.status, p.summary,
                                        p.created_by, aware(p.created_at)))
        items.sort(key=lambda i: (i.created_at, i.kind, i.id))
        start = (page - 1) * per_page
        return ReviewPage(items[start : start + per_page], page, per_page, len(items))

    def drift_by_day(self, threshold: float, days: int = 14, now: datetime | None = None) -> list[DriftDay]:
        """One entry per UTC day of the last `days` days (oldest first), days without questions too.
        An answer that showed no source at all counts as below the threshold."""
        if days < 1:
            raise ValueError("days must be at least 1")
        moment = utc(now) or _now()
        first_day = (moment - timedelta(days=days - 1)).date()
        since = datetime.combine(first_day, datetime.min.time(), tzinfo=timezone.utc)
        best = (
            select(m.ShownSource.answer_id, func.max(m.ShownSource.score).label("best"))
            .group_by(col(m.ShownSource.answer_id))
            .subquery()
        )
        query = (
            select(m.Answer.created_at, best.c.best)
            .select_from(m.Answer)
            .outerjoin(best, best.c.answer_id == m.Answer.id)  # type: ignore[arg-type]
            .where(m.Answer.created_at >= since)
        )
        counts: dict[date, list[int]] = {first_day + timedelta(days=i): [0, 0] for i in range(days)}
        with self.db.reading() as session:
            for created_at, best_score in session.exec(query).all():
                day = aware(created_at).date()
                if day not in counts:
                    continue
                counts[day][0] += 1
                if best_score is None or best_score < threshold:
                    counts[day][1] += 1
        return [DriftDay(day, total, low) for day, (total, low) in sorted(counts.items())]

    def gauges(self, threshold: float, window_days: int = 7, now: datetime | None = None) -> dict[str, float]:
        """The figures every replica exports as gauges (they share the database, so they agree)."""
        moment = utc(now) or _now()
        share, votes = self.satisfaction(moment - timedelta(days=window_days))
        stats = self.stats(now=moment)
        today = self.drift_by_day(threshold, days=1, now=moment)[0]
        figures = {
            "pending_corrections": float(stats.pending_corrections),
            "pending_proposals": float(stats.open_proposals),
            "pending_reviews": float(stats.pending_corrections + stats.open_proposals),
            "drift_low_score_share": today.share,
            "questions_today": float(today.questions),
            "active_tuning_version": float(stats.active_version or 0),
        }
        if share is not None:
            figures["satisfaction_rate"] = share
        return figures

    def export_rows(self, *, batch: int = 500) -> Iterator[dict[str, Any]]:
        """One dict per answer, oldest first: question, asker, sources shown, votes, corrections."""
        last = 0
        while True:
            with self.db.reading() as session:
                answers = session.exec(
                    select(m.Answer).where(m.Answer.id > last).order_by(m.Answer.id).limit(batch)  # type: ignore[operator, arg-type]
                ).all()
                if not answers:
                    return
                ids = [a.id for a in answers if a.id is not None]
                shown = self.db.shown_for(session, ids)
                votes: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
                for v in session.exec(select(m.Vote).where(m.Vote.answer_id.in_(ids)).order_by(m.Vote.id)).all():  # type: ignore[attr-defined, arg-type]
                    votes[v.answer_id].append({"user": v.user_id, "value": v.value, "time": aware(v.updated_at).isoformat(),
                                               "counted": v.counted, "weight": v.weight})
                corrections: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
                for c in session.exec(select(m.Correction).where(m.Correction.answer_id.in_(ids)).order_by(m.Correction.id)).all():  # type: ignore[attr-defined, arg-type]
                    corrections[c.answer_id].append({
                        "id": c.id, "user": c.user_id, "text": c.text, "source": c.source_ref, "status": c.status,
                        "time": aware(c.created_at).isoformat(), "decided_by": c.decided_by,
                    })
                for a in answers:
                    assert a.id is not None
                    yield {
                        "answer_id": a.id, "question": a.question, "asker": a.asker, "origin": a.origin,
                        "channel": a.channel, "time": aware(a.created_at).isoformat(),
                        "tuning_version": a.tuning_version, "abstained": a.abstained, "answer": a.answer_text,
                        "sources": [s.as_dict() for s in shown[a.id]], "votes": votes[a.id],
                        "corrections": corrections[a.id],
                    }
                last = ids[-1]
