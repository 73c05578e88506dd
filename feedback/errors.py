"""Errors of the feedback store, each with a message fit to show a person as-is.

Interfaces (CLI, shell, Slack) catch `FeedbackError` and print its message on one line; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FeedbackError(Exception):
    """Base class: the request was refused and nothing changed."""


class UnknownAnswer(FeedbackError):
    def __init__(self, answer_id: object) -> None:
        super().__init__(f"there is no answer #{answer_id} (it may have been given by another bot)")
        self.answer_id = answer_id


class PermissionDenied(FeedbackError):
    """The user is not a moderator (or otherwise may not do this)."""


class InvalidFeedback(FeedbackError):
    """Malformed input: a vote that is not +1/-1, an empty correction, a bad id."""


class NotFound(FeedbackError):
    """A correction, proposal, version or user that does not exist."""


class InvalidState(FeedbackError):
    """The object exists but is not in a state that allows this (e.g. approving twice)."""


class OutdatedSchema(FeedbackError):
    """The database schema is older (or newer) than this version of askloop expects.

    `upgradable`: running the migrations would fix it (the interface says how to run them)."""

    def __init__(self, message: str, *, upgradable: bool = True) -> None:
        super().__init__(message)
        self.upgradable = upgradable


class NeedsOverride(InvalidState):
    """The proposal failed (or skipped) its evaluation: only an explicit, audited override may
    approve it. Interfaces offer their own way to give one (a flag, a confirmed button)."""

    def __init__(self, message: str, proposal_id: int) -> None:
        super().__init__(message)
        self.proposal_id = proposal_id


class DatabaseUnavailable(FeedbackError):
    """The feedback database cannot be reached or used (down, wrong address or credentials)."""


def is_database_failure(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached or answered in time (not a bug,
    not a refusal): interfaces tell people to try again instead of apologising for a crash."""
    from sqlalchemy.exc import DBAPIError, TimeoutError

    if isinstance(error, DatabaseUnavailable | TimeoutError):
        return True
    return isinstance(error, DBAPIError) and (error.connection_invalidated or error.__class__.__name__ == "OperationalError")
