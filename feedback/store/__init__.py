"""The feedback store: the one place that reads and writes the feedback database, by concept.

`FeedbackStore` only holds one `Database` (engine, transactions, retries) and one object per
concept: `answers`, `votes`, `corrections`, `golden`, `proposals` (and versions), `audit`,
`deliveries` (idempotency), `reports`, `users`, `training`. It knows the rules the database
itself must enforce under concurrency (one vote per user per answer, one claim per delivery, no
approve without a passed gate or an override, versions immutable, one active pointer); who may
do what, and in which order the use cases happen, is `feedback.loop.FeedbackLoop`'s business.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from feedback import db
from feedback.errors import DatabaseUnavailable
from feedback.store.answers import Answers
from feedback.store.audit import AuditLog
from feedback.store.base import Database, pack_vector, unpack_vector
from feedback.store.corrections import Corrections, split_source
from feedback.store.deliveries import Deliveries
from feedback.store.golden import GoldenSet
from feedback.store.proposals import OPEN_PROPOSAL_STATES, Proposals
from feedback.store.reports import DriftDay, Reports
from feedback.store.training import TrainingData
from feedback.store.users import Users
from feedback.store.votes import Votes
from feedback.validation import VotePolicy

__all__ = [
    "OPEN_PROPOSAL_STATES",
    "DriftDay",
    "FeedbackStore",
    "pack_vector",
    "split_source",
    "unpack_vector",
]


class FeedbackStore:
    def __init__(self, url: str, *, policy: VotePolicy | None = None, engine: Engine | None = None) -> None:
        self.database = Database(url, engine)
        self.answers = Answers(self.database)
        self.votes = Votes(self.database, policy)
        self.corrections = Corrections(self.database)
        self.golden = GoldenSet(self.database)
        self.proposals = Proposals(self.database)
        self.audit = AuditLog(self.database)
        self.deliveries = Deliveries(self.database)
        self.reports = Reports(self.database)
        self.users = Users(self.database)
        self.training = TrainingData(self.database)

    @property
    def url(self) -> str:
        return self.database.url

    @property
    def engine(self) -> Engine:
        return self.database.engine

    @property
    def is_sqlite(self) -> bool:
        return self.database.dialect == "sqlite"

    def close(self) -> None:
        self.database.close()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the schema to the newest revision (`askloop db upgrade`)."""
        return db.upgrade(self.engine)

    def check_schema(self) -> str:
        """The revision, or OutdatedSchema saying that the schema must be upgraded; a database that
        cannot be reached is DatabaseUnavailable, with the first line of why."""
        try:
            return db.check_schema(self.engine)
        except SQLAlchemyError as exc:
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise DatabaseUnavailable(f"cannot use the feedback database: {first}") from exc

    def is_empty(self) -> bool:
        return db.is_empty(self.engine)

    def ping(self) -> None:
        """One cheap query: raises when the database cannot be reached."""
        self.proposals.active_version_number()
