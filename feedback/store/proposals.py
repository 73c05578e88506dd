"""Proposals and tuning versions: what learning suggests, the moderator's decision, what is live.

The rules, enforced here in the transaction that changes the state:
- a proposal is approved only after it passed the evaluation gate, or with an explicit override
  (recorded on the proposal and in the audit log as `proposal.approve_override`);
- approving with `apply` creates the new immutable TuningVersion and switches the active pointer
  in the same transaction, so no crash can leave it approved but not live; a proposal approved
  without applying stays `approved` and can be applied later from every interface;
- switching versions (apply, rollback) locks the single-row active pointer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from feedback import models as m
from feedback.errors import InvalidFeedback, InvalidState, NeedsOverride, NotFound
from feedback.records import ProposalRecord, VersionRecord
from feedback.refs import proposal_ref
from feedback.store.base import Database, audit, aware, check_json, now, user_text, utc

# Proposals still waiting for a moderator (or, once approved, for being applied).
OPEN_PROPOSAL_STATES = ("pending", "evaluated", "failing", "approved")
DECIDABLE = ("pending", "evaluated", "failing")


def proposal_record(r: m.Proposal) -> ProposalRecord:
    assert r.id is not None
    return ProposalRecord(
        id=r.id, summary=r.summary, diff=dict(r.diff), payload=dict(r.payload),
        evaluation=None if r.evaluation is None else dict(r.evaluation), status=r.status,
        created_by=r.created_by, created_at=aware(r.created_at),
        decided_by=r.decided_by, decided_at=utc(r.decided_at), note=r.note,
        override=r.override, applied_version=r.applied_version,
    )


def version_record(v: m.TuningVersion, active: bool) -> VersionRecord:
    return VersionRecord(number=v.number, payload=dict(v.payload), created_at=aware(v.created_at),
                         created_by=v.created_by, proposal_id=v.proposal_id, note=v.note, active=active)


class Proposals:
    def __init__(self, database: Database) -> None:
        self.db = database

    # -- proposals ----------------------------------------------------------------------------

    def create(self, *, summary: str, diff: dict[str, Any], payload: dict[str, Any], created_by: str) -> ProposalRecord:
        summary = (summary or "").strip()
        if not summary:
            raise InvalidFeedback("a proposal needs a summary")
        diff = check_json(diff, "the diff")
        payload = check_json(payload, "the payload")

        def work(session: Session) -> ProposalRecord:
            row = m.Proposal(summary=summary, diff=diff, payload=payload, created_by=created_by or "system")
            session.add(row)
            session.flush()
            audit(session, row.created_by, "proposal.create", "proposal", row.id,
                  after={"status": "pending", "summary": summary, "diff": diff})
            return proposal_record(row)

        return self.db.write(work)

    def _locked(self, session: Session, proposal_id: int, allowed: Iterable[str], doing: str) -> m.Proposal:
        row = session.exec(select(m.Proposal).where(m.Proposal.id == proposal_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"there is no proposal {proposal_ref(proposal_id)}")
        if row.status not in allowed:
            raise InvalidState(f"proposal {proposal_ref(proposal_id)} is {row.status}: it cannot be {doing}")
        return row

    def get(self, proposal_id: int) -> ProposalRecord:
        with self.db.reading() as session:
            row = session.get(m.Proposal, proposal_id)
            if row is None:
                raise NotFound(f"there is no proposal {proposal_ref(proposal_id)}")
            return proposal_record(row)

    def find(self, *, status: str | Iterable[str] | None = None) -> list[ProposalRecord]:
        with self.db.reading() as session:
            query = select(m.Proposal).order_by(m.Proposal.id)  # type: ignore[arg-type]
            if isinstance(status, str):
                query = query.where(m.Proposal.status == status)
            elif status is not None:
                query = query.where(m.Proposal.status.in_(list(status)))  # type: ignore[attr-defined]
            return [proposal_record(r) for r in session.exec(query).all()]

    def open_with_payload(self, payload_id: str) -> ProposalRecord | None:
        """The open proposal (waiting for evaluation, a decision or an apply) carrying this payload."""
        if not payload_id:
            return None
        for proposal in reversed(self.find(status=OPEN_PROPOSAL_STATES)):
            if proposal.payload.get("id") == payload_id:
                return proposal
        return None

    def record_evaluation(self, proposal_id: int, evaluation: dict[str, Any], passed: bool, *,
                          actor: str = "gate") -> ProposalRecord:
        evaluation = check_json(evaluation, "the evaluation")

        def work(session: Session) -> ProposalRecord:
            row = self._locked(session, proposal_id, DECIDABLE, "evaluated")
            before = {"status": row.status}
            row.evaluation, row.status = evaluation, "evaluated" if passed else "failing"
            session.add(row)
            session.flush()
            audit(session, actor, "proposal.evaluate", "proposal", row.id, before=before,
                  after={"status": row.status, "passed": bool(passed), "evaluation": evaluation})
            return proposal_record(row)

        return self.db.write(work)

    def approve(self, proposal_id: int, moderator: str, *, note: str | None = None, override: bool = False,
                apply: bool = True) -> tuple[ProposalRecord, VersionRecord | None]:
        """Approve a proposal that passed its evaluation (a failing or unevaluated one only with
        `override`), and with `apply` make it the live version in the same transaction. An
        already approved proposal is applied. Returns the proposal and the new version (if any)."""
        note = user_text(note, "the note")

        def work(session: Session) -> tuple[ProposalRecord, VersionRecord | None]:
            pointer = self._lock_pointer(session) if apply else None
            row = self._locked(session, proposal_id, DECIDABLE + ("approved",), "approved")
            if row.status != "approved":
                if row.status != "evaluated" and not override:
                    why = "failed its evaluation" if row.status == "failing" else "has not been evaluated yet"
                    raise NeedsOverride(
                        f"proposal {proposal_ref(proposal_id)} {why}: it can only be approved with an override "
                        "(which is audited)", proposal_id,
                    )
                forced = row.status != "evaluated"
                before = {"status": row.status}
                row.status, row.decided_by, row.decided_at, row.note = "approved", moderator, now(), note
                row.override = forced
                session.add(row)
                session.flush()
                audit(session, moderator, "proposal.approve_override" if forced else "proposal.approve",
                      "proposal", row.id, before=before, after={"status": "approved", "override": forced}, note=note)
            elif not apply:
                raise InvalidState(f"proposal {proposal_ref(proposal_id)} is already approved: apply it")
            version = self._apply(session, pointer, row, moderator) if pointer is not None else None
            return proposal_record(row), version

        return self.db.write(work)

    def apply(self, proposal_id: int, moderator: str) -> VersionRecord:
        """Turn an approved proposal into a new immutable TuningVersion and make it live."""
        def work(session: Session) -> VersionRecord:
            pointer = self._lock_pointer(session)
            row = self._locked(session, proposal_id, ("approved",), "applied (approve it first)")
            return self._apply(session, pointer, row, moderator)

        return self.db.write(work)

    def _apply(self, session: Session, pointer: m.ActiveVersion, proposal: m.Proposal, moderator: str) -> VersionRecord:
        previous = pointer.number
        latest = session.exec(select(func.max(m.TuningVersion.number))).one()
        number = int(latest or 0) + 1
        version = m.TuningVersion(number=number, payload=dict(proposal.payload), created_by=moderator,
                                  proposal_id=proposal.id, note=proposal.summary)
        session.add(version)
        session.flush()
        proposal.status, proposal.applied_version = "applied", number
        session.add(proposal)
        session.flush()
        self._activate(session, pointer, number, moderator)
        audit(session, moderator, "proposal.apply", "proposal", proposal.id,
              before={"status": "approved"}, after={"status": "applied", "version": number})
        audit(session, moderator, "version.activate", "tuning_version", number,
              before={"active": previous}, after={"active": number})
        return version_record(version, active=True)

    def reject(self, proposal_id: int, moderator: str, *, note: str | None = None) -> ProposalRecord:
        note = user_text(note, "the note")

        def work(session: Session) -> ProposalRecord:
            row = self._locked(session, proposal_id, OPEN_PROPOSAL_STATES, "rejected")
            before = {"status": row.status}
            row.status, row.decided_by, row.decided_at, row.note = "rejected", moderator, now(), note
            session.add(row)
            session.flush()
            audit(session, moderator, "proposal.reject", "proposal", row.id, before=before,
                  after={"status": "rejected"}, note=note)
            return proposal_record(row)

        return self.db.write(work)

    # -- versions -----------------------------------------------------------------------------

    def _lock_pointer(self, session: Session) -> m.ActiveVersion:
        pointer = session.exec(select(m.ActiveVersion).where(m.ActiveVersion.id == 1).with_for_update()).first()
        if pointer is None:  # a database whose seed row was deleted by hand
            pointer = m.ActiveVersion(id=1, number=None)
            session.add(pointer)
            session.flush()
        return pointer

    def _activate(self, session: Session, pointer: m.ActiveVersion, number: int | None, who: str) -> None:
        pointer.number, pointer.changed_at, pointer.changed_by = number, now(), who
        session.add(pointer)
        session.flush()

    def rollback(self, version_number: int, moderator: str) -> VersionRecord | None:
        """Make an earlier version live again (0 means the base index without any tuning)."""
        def work(session: Session) -> VersionRecord | None:
            pointer = self._lock_pointer(session)
            target: m.TuningVersion | None = None
            if version_number != 0:
                target = session.exec(select(m.TuningVersion).where(m.TuningVersion.number == version_number)).first()
                if target is None:
                    raise NotFound(f"there is no version {version_number}")
            number = target.number if target else None
            if pointer.number == number:
                raise InvalidState(f"version {version_number} is already active")
            previous = pointer.number
            self._activate(session, pointer, number, moderator)
            audit(session, moderator, "version.rollback", "tuning_version", version_number,
                  before={"active": previous}, after={"active": number})
            return version_record(target, active=True) if target else None

        return self.db.write(work)

    def active_version(self) -> VersionRecord | None:
        """The live tuning version; None while the base index is live."""
        with self.db.reading() as session:
            row = session.exec(
                select(m.TuningVersion)
                .join(m.ActiveVersion, m.ActiveVersion.number == m.TuningVersion.number)  # type: ignore[arg-type]
                .where(m.ActiveVersion.id == 1)
            ).first()
            return None if row is None else version_record(row, active=True)

    def active_version_number(self) -> int | None:
        with self.db.reading() as session:
            return session.exec(select(m.ActiveVersion.number).where(m.ActiveVersion.id == 1)).first()

    def versions(self) -> list[VersionRecord]:
        with self.db.reading() as session:
            active = session.exec(select(m.ActiveVersion.number).where(m.ActiveVersion.id == 1)).first()
            rows = session.exec(select(m.TuningVersion).order_by(m.TuningVersion.number)).all()  # type: ignore[arg-type]
            return [version_record(v, active=v.number == active) for v in rows]
