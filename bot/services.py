"""Wiring: build the knowledge base (and everything on top of it) from settings, lazily.

Every interface (CLI, shell, Slack) goes through one `Services` object, so an answer given in
the terminal and one given in Slack take exactly the same path.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot.settings import Settings
from retrieval.answer import Answer, extractive_answer, llm_answer, load_chat_model
from retrieval.chunking import Chunker
from retrieval.embeddings import Embedder, shared_embedder
from retrieval.ingest import Ingestor
from retrieval.search import KnowledgeBase
from retrieval.store import ChunkStore, open_client
from retrieval.tuning import NoTuning, Tuning

if TYPE_CHECKING:
    from feedback.learning import LearningParams
    from feedback.records import VersionRecord
    from feedback.store import FeedbackStore

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)


def local_user() -> str:
    """Who is at the keyboard, for answers asked from the terminal."""
    try:
        return getpass.getuser()
    except Exception:
        return "local"


class Services:
    def __init__(
        self,
        settings: Settings,
        chat_model: Any = None,
        *,
        is_moderator: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._chat_model = chat_model
        self._is_moderator = is_moderator  # e.g. Slack usergroup membership, besides ASKLOOP_MODERATORS
        self._tuning_lock = threading.Lock()
        self._tuning_cache: tuple[float, int | None, Tuning] | None = None

    @cached_property
    def embedder(self) -> Embedder:
        return shared_embedder(self.settings.embedding_model)

    @cached_property
    def store(self) -> ChunkStore:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        client = open_client(self.settings.chroma_path, self.settings.chroma_url)
        return ChunkStore(client, self.settings.collection)

    @cached_property
    def knowledge_base(self) -> KnowledgeBase:
        return KnowledgeBase(
            self.store,
            self.embedder,
            self.settings.max_question_chars,
            self.settings.lexical_weight,
            keyword_cache=self.settings.home / "keywords",
        )

    @cached_property
    def chunker(self) -> Chunker:
        return Chunker(self.settings.chunk_size, self.settings.chunk_overlap, self.settings.title_weight)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder, self.chunker)

    @property
    def chat_model(self) -> Any:
        if self._chat_model is None and self.settings.llm:
            self._chat_model = load_chat_model(self.settings.llm)
        return self._chat_model

    @cached_property
    def feedback(self) -> "FeedbackStore":
        """The feedback store, on a schema this version understands (or a clear refusal).

        A brand-new embedded SQLite database gets its schema created on first use; an existing
        database that is behind is refused with OutdatedSchema ("run `askloop db upgrade`"), so
        nothing writes to a schema it does not match.
        """
        from feedback.db import is_sqlite
        from feedback.store import FeedbackStore

        store = FeedbackStore.from_settings(self.settings, is_moderator=self._is_moderator)
        try:
            if is_sqlite(store.url) and store.is_empty():
                store.upgrade()
            store.check_schema()
        except BaseException:
            store.close()
            raise
        return store

    def tuning(self) -> Tuning:
        """The active tuning version (the base index until feedback has been applied).

        The version number is re-read at most every `tuning_cache_seconds`, so every replica
        switches within seconds of an apply or rollback; a version is only decoded when it changes.
        """
        ttl = self.settings.tuning_cache_seconds
        now = time.monotonic()
        with self._tuning_lock:
            cached = self._tuning_cache
            if cached is not None and now - cached[0] < ttl:
                return cached[2]
            number = self.feedback.active_version_number()
            if cached is not None and cached[1] == number:
                self._tuning_cache = (now, number, cached[2])
                return cached[2]
            version = self.feedback.active_version() if number is not None else None
            tuning = self._build_tuning(version)
            self._tuning_cache = (now, version.number if version else None, tuning)
            return tuning

    @staticmethod
    def _build_tuning(version: "VersionRecord | None") -> Tuning:
        if version is None:
            return NoTuning()
        try:
            from retrieval.learned import tuning_from_payload
        except ImportError:  # the learning engine is not installed: serve the base index
            log.warning("tuning version %s is active but retrieval.learned is unavailable", version.number)
            return NoTuning()
        try:
            return tuning_from_payload(version.payload, version.number)
        except Exception:  # a version that cannot be decoded must not take answering down
            log.exception("tuning version %s cannot be used; serving the base index", version.number)
            return NoTuning()

    def learning_params(self) -> "LearningParams":
        """The learning engine's parameters: the global defaults, except what settings change."""
        from dataclasses import replace

        from feedback.learning import LearningParams

        params = LearningParams()
        return replace(
            params,
            memory=replace(params.memory, title_margin=self.settings.title_margin),
            encoder=replace(params.encoder, enabled=self.settings.tune_query_encoder),
        )

    def answer(
        self,
        question: str,
        k: int | None = None,
        *,
        asker: str | None = None,
        origin: str = "cli",
        channel: str | None = None,
        thread_ts: str | None = None,
        record: bool = True,
    ) -> Answer:
        """Answer and record it (question, shown sources, tuning version) for feedback.

        The answer's id is in `answer.extras["answer_id"]`; `record=False` is for replays that
        must not look like questions people asked.
        """
        tuning = self.tuning()
        result = self.knowledge_base.search(question, k or self.settings.top_k, tuning)
        threshold = self.settings.answer_threshold
        if self.chat_model is not None:
            answer = llm_answer(
                self.chat_model, result.question, result.hits, threshold, result.tuning_version
            )
        else:
            answer = extractive_answer(result.question, result.hits, threshold, result.tuning_version)
        if record:
            recorded = self.feedback.record_answer(
                question=answer.question,
                asker=asker or local_user(),
                origin=origin,
                hits=answer.hits,
                answer_text=answer.text,
                abstained=answer.abstained,
                tuning_version=answer.tuning_version,
                channel=channel,
                thread_ts=thread_ts,
                # the raw question vector (before any learned adapter): learning reuses it
                question_vector=result.vector,
                vector_model=self.knowledge_base.embedder.model_id,
            )
            answer.extras["answer_id"] = recorded.id
        return answer
