"""Drift and health figures read straight from the feedback store's tables.

Drift here means: the knowledge base stops covering what people ask. Its signal is the share
of questions whose best match scores below the answer threshold, per day — a rising share says
"add documents" long before anyone files a complaint. The figures are computed from recorded
answers (the shown sources and their scores), so every replica and the CLI agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from feedback import models
from feedback.store import OPEN_PROPOSAL_STATES  # proposals still waiting for a moderator



@dataclass(frozen=True)
class DriftDay:
    day: date
    questions: int
    below_threshold: int

    @property
    def share(self) -> float:
        return self.below_threshold / self.questions if self.questions else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"day": self.day.isoformat(), "share": round(self.share, 4)}


def engine_of(store_or_engine: Any) -> Engine:
    """The SQLAlchemy engine behind a FeedbackStore (or the engine itself)."""
    if isinstance(store_or_engine, Engine):
        return store_or_engine
    for name in ("engine", "_engine"):
        engine = getattr(store_or_engine, name, None)
        if isinstance(engine, Engine):
            return engine
    raise TypeError(f"no SQLAlchemy engine on {type(store_or_engine).__name__}")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def drift_by_day(store_or_engine: Any, threshold: float, days: int = 14,
                 now: datetime | None = None) -> list[DriftDay]:
    """One entry per UTC day of the last `days` days (oldest first), days without questions too.

    An answer that showed no source at all counts as below the threshold.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    now = _as_utc(now or datetime.now(timezone.utc))
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=timezone.utc)
    best = (
        select(models.ShownSource.answer_id, func.max(models.ShownSource.score).label("best"))
        .group_by(models.ShownSource.answer_id)
        .subquery()
    )
    query = (
        select(models.Answer.created_at, best.c.best)
        .select_from(models.Answer)
        .outerjoin(best, best.c.answer_id == models.Answer.id)
        .where(models.Answer.created_at >= since)
    )
    counts: dict[date, list[int]] = {first_day + timedelta(days=i): [0, 0] for i in range(days)}
    with engine_of(store_or_engine).connect() as conn:
        for created_at, best_score in conn.execute(query):
            day = _as_utc(created_at).date()
            if day not in counts:
                continue
            counts[day][0] += 1
            if best_score is None or best_score < threshold:
                counts[day][1] += 1
    return [DriftDay(day, total, low) for day, (total, low) in sorted(counts.items())]


def feedback_figures(store_or_engine: Any, threshold: float, window_days: int = 7,
                     now: datetime | None = None) -> dict[str, float]:
    """Satisfaction, pending reviews, today's drift and the active version, in one read."""
    now = _as_utc(now or datetime.now(timezone.utc))
    engine = engine_of(store_or_engine)
    since = now - timedelta(days=window_days)
    with engine.connect() as conn:
        up, total = conn.execute(
            select(
                func.coalesce(func.sum(case((models.Vote.value > 0, models.Vote.weight), else_=0.0)), 0.0),
                func.coalesce(func.sum(models.Vote.weight), 0.0),
            ).where(models.Vote.counted.is_(True), models.Vote.updated_at >= since)
        ).one()
        corrections = conn.execute(
            select(func.count()).select_from(models.Correction).where(models.Correction.status == "pending")
        ).scalar_one()
        proposals = conn.execute(
            select(func.count()).select_from(models.Proposal)
            .where(models.Proposal.status.in_(OPEN_PROPOSAL_STATES))
        ).scalar_one()
        active = conn.execute(
            select(models.ActiveVersion.number).where(models.ActiveVersion.id == 1)
        ).scalar_one_or_none()
    today = drift_by_day(engine, threshold, days=1, now=now)[0]
    figures = {
        "pending_corrections": float(corrections),
        "pending_proposals": float(proposals),
        "pending_reviews": float(corrections + proposals),
        "drift_low_score_share": today.share,
        "questions_today": float(today.questions),
        "active_tuning_version": float(active or 0),
    }
    if total:
        figures["satisfaction_rate"] = float(up) / float(total)
    return figures
