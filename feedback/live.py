"""The live tuning: the active TuningVersion as retrieval applies it, shared by every question.

Every replica re-reads which version is active at most every `ttl` seconds, so all of them switch
within seconds of an apply or a rollback, and decodes a version only when it changes (versions
are immutable). A version that cannot be decoded must not take answering down: the base index is
served instead, and the failure is logged once per version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from feedback.records import VersionRecord
from feedback.store.proposals import Proposals
from retrieval.tuning import NoTuning, Tuning

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder

log = logging.getLogger("askloop.feedback")


def decode_version(version: VersionRecord | None, embedder: "Callable[[], Embedder] | None" = None) -> Tuning:
    """The Tuning a version describes, or the base index when there is none or it is unusable.
    `embedder`: returns the one questions are embedded with (a tuned query encoder runs on its
    backend); asked for only when the version has a tuned query encoder."""
    if version is None:
        return NoTuning()
    try:
        from retrieval.tuning_payload import tuning_from_payload

        wanted = embedder is not None and bool(version.payload.get("query_encoder"))
        return tuning_from_payload(version.payload, version.number, embedder() if wanted and embedder else None)
    except Exception:  # a version that cannot be decoded must not take answering down
        log.exception("tuning version %s cannot be used; serving the base index", version.number)
        return NoTuning()


class LiveTuning:
    def __init__(self, proposals: Proposals, ttl: float = 2.0,
                 embedder: "Callable[[], Embedder] | None" = None) -> None:
        """`embedder`: returns the embedder questions are embedded with (read only when a version
        is decoded, so nothing is loaded before it is needed)."""
        self.proposals = proposals
        self.ttl = ttl
        self._embedder = embedder
        self._lock = threading.Lock()
        self._cached: tuple[float, int | None, Tuning] | None = None

    def current(self) -> Tuning:
        now = time.monotonic()
        with self._lock:
            cached = self._cached
            if cached is not None and now - cached[0] < self.ttl:
                return cached[2]
            number = self.proposals.active_version_number()
            if cached is not None and cached[1] == number:
                self._cached = (now, number, cached[2])
                return cached[2]
            version = self.proposals.active_version() if number is not None else None
            tuning = decode_version(version, self._embedder)
            self._cached = (now, version.number if version else None, tuning)
            return tuning

    def forget(self) -> None:
        """Re-read on the next question (after this process applied or rolled back a version)."""
        with self._lock:
            self._cached = None
