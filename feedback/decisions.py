"""Moderators' decisions: approve, edit, reject, apply, roll back, flag — the rules, once.

- Only moderators decide. A refusal changes nothing but is audited (`moderation.denied`), so
  an attempt to approve one's own correction is on record.
- A proposal that failed (or skipped) its evaluation is approved only with an explicit override
  (`NeedsOverride` otherwise); the override is recorded on the proposal and audited.
- Approving a proposal applies it in the same transaction unless the caller asks not to; a
  proposal approved without applying stays visible as `approved` and `apply` makes it live.
Every interface words the outcome with `Decision.message()`, so people read the same thing in
Slack, the CLI and the shell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from feedback.errors import InvalidFeedback, PermissionDenied
from feedback.live import LiveTuning
from feedback.records import CorrectionRecord, ProposalRecord, VersionRecord
from feedback.refs import Ref, parse_ref
from feedback.store import FeedbackStore

Outcome = Literal["approved", "edited", "rejected", "applied", "approved_not_applied"]


@dataclass(frozen=True)
class Decision:
    ref: str  # c3 | p7
    outcome: Outcome
    correction: CorrectionRecord | None = None
    proposal: ProposalRecord | None = None
    version: VersionRecord | None = None
    override: bool = False

    def message(self) -> str:
        """One line for the person who decided."""
        if self.correction is not None:
            if self.outcome == "rejected":
                return f"Correction {self.ref} rejected."
            edited = " (edited)" if self.outcome == "edited" else ""
            return (f"Correction {self.ref} approved{edited}: it goes into the next proposal, which is evaluated "
                    "before it changes any answer.")
        if self.outcome == "rejected":
            return f"Proposal {self.ref} rejected."
        forced = " with an override (audited)" if self.override else ""
        if self.outcome == "approved_not_applied":
            return f"Proposal {self.ref} approved{forced}; it is not live until it is applied."
        assert self.version is not None
        return (f"Proposal {self.ref} approved{forced} and applied: tuning version {self.version.number} "
                "is now live (an earlier version can be made live again at any time).")


class Decisions:
    def __init__(self, store: FeedbackStore, is_moderator: Callable[[str], bool], live: LiveTuning) -> None:
        self.store = store
        self.is_moderator = is_moderator
        self.live = live

    def require(self, user: str, action: str, target: str = "") -> None:
        """Refuse, and audit the refusal, unless `user` may moderate."""
        if self.is_moderator(user):
            return
        try:
            self.store.audit.record(user or "unknown", "moderation.denied", action.split(".")[0], target or "-",
                                    after={"attempted": action})
        finally:
            raise PermissionDenied(
                f"{user or 'this user'} is not a moderator: only moderators may approve, reject, edit, apply, "
                "flag or roll back"
            )

    def decide(self, ref: str | Ref, moderator: str, approve: bool, *, note: str | None = None,
               text: str | None = None, source: str | None = None, override: bool = False,
               apply: bool = True) -> Decision:
        target = ref if isinstance(ref, Ref) else parse_ref(ref, "correction", "proposal")
        verb = "approve" if approve else "reject"
        self.require(moderator, f"{target.kind}.{verb}", str(target))
        if target.kind == "correction":
            if override:
                raise InvalidFeedback("an override is for proposals; corrections have no evaluation to override")
            if not approve:
                return Decision(str(target), "rejected", self.store.corrections.reject(target.id, moderator, note=note))
            edited = text is not None or source is not None
            record = self.store.corrections.approve(target.id, moderator, note=note, text=text, source_ref=source)
            return Decision(str(target), "edited" if edited else "approved", record)
        if text is not None or source is not None:
            raise InvalidFeedback("text and source edit corrections, not proposals")
        if not approve:
            return Decision(str(target), "rejected", proposal=self.store.proposals.reject(target.id, moderator, note=note))
        proposal, version = self.store.proposals.approve(target.id, moderator, note=note, override=override,
                                                         apply=apply)
        if version is not None:
            self.live.forget()
            proposal = self.store.proposals.get(target.id)
        return Decision(str(target), "applied" if version else "approved_not_applied", proposal=proposal,
                        version=version, override=proposal.override)

    def apply(self, ref: str | Ref, moderator: str) -> Decision:
        target = ref if isinstance(ref, Ref) else parse_ref(ref, "proposal")
        if target.kind != "proposal":
            raise InvalidFeedback("only proposals are applied; approved corrections go into the next proposal")
        self.require(moderator, "proposal.apply", str(target))
        version = self.store.proposals.apply(target.id, moderator)
        self.live.forget()
        proposal = self.store.proposals.get(target.id)
        return Decision(str(target), "applied", proposal=proposal, version=version, override=proposal.override)

    def rollback(self, version: int, moderator: str) -> VersionRecord | None:
        self.require(moderator, "version.rollback", f"v{version}")
        record = self.store.proposals.rollback(version, moderator)
        self.live.forget()
        return record

    def flag(self, user: str, moderator: str, reason: str = "") -> None:
        self.require(moderator, "user.flag", user)
        self.store.users.flag(user, moderator, reason)

    def unflag(self, user: str, moderator: str) -> None:
        self.require(moderator, "user.unflag", user)
        self.store.users.unflag(user, moderator)


__all__ = ["Decision", "Decisions"]
