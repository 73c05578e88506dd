"""Wiring: settings in, the knowledge base and the feedback loop out, each built lazily.

Every interface (CLI, shell, Slack, worker, `askloop eval`) gets its `FeedbackLoop` from here, so
an answer given in the terminal and one given in Slack take exactly the same path. Nothing is
opened until it is used: `askloop stats` never loads the embedding model or opens Chroma, and a
server answers /healthz while Chroma is still starting.
"""

from __future__ import annotations

import getpass
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import Settings
    from feedback.config import LoopConfig
    from feedback.events import LoopEvents
    from feedback.loop import FeedbackLoop
    from feedback.store import FeedbackStore
    from retrieval.chunking import Chunker
    from retrieval.embeddings import Embedder
    from retrieval.ingest import Ingestor
    from retrieval.search import KnowledgeBase
    from retrieval.store import ChunkStore

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def local_user() -> str:
    """Who is at the keyboard, for answers asked from the terminal."""
    try:
        return getpass.getuser()
    except Exception:
        return "local"


def loop_config(settings: "Settings", *, local_owner: str | None = None) -> "LoopConfig":
    """The feedback loop's configuration, from the settings people set."""
    from feedback.config import LoopConfig
    from feedback.gate import GateConfig
    from feedback.learning import LearningParams
    from feedback.validation import VotePolicy

    params = LearningParams()
    return LoopConfig(
        top_k=settings.top_k,
        answer_threshold=settings.answer_threshold,
        policy=VotePolicy(
            max_votes_per_hour=settings.vote_limit_per_hour,
            asker_weight=settings.asker_vote_weight,
            other_weight=settings.other_vote_weight,
        ),
        gate=GateConfig(tolerance=settings.gate_tolerance, recent=settings.gate_recent_questions),
        learning=replace(
            params,
            memory=replace(params.memory, title_margin=settings.title_margin),
            encoder=replace(params.encoder, enabled=settings.tune_query_encoder),
        ),
        tuning_cache_seconds=settings.tuning_cache_seconds,
        moderators=frozenset(settings.moderators),
        local_owner=local_owner,
    )


class Services:
    def __init__(
        self,
        settings: "Settings",
        chat_model: Any = None,
        *,
        is_moderator: Callable[[str], bool] | None = None,
        events: "LoopEvents | None" = None,
        local_owner: str | None = None,
    ) -> None:
        """`is_moderator`: moderators the interface knows besides ASKLOOP_MODERATORS (a Slack
        usergroup); `events`: who counts what the loop does (metrics); `local_owner`: the person
        at this terminal, who may moderate in their own shell."""
        self.settings = settings
        self._chat_model = chat_model
        self._is_moderator = is_moderator
        self._events = events
        self._local_owner = local_owner
        self._warming = threading.Lock()

    # -- the knowledge base ---------------------------------------------------------------------

    @cached_property
    def embedder(self) -> "Embedder":
        from retrieval.embeddings import shared_embedder

        return shared_embedder(self.settings.embedding_model, self.settings.embedding_backend, self.settings.model_cache)

    @cached_property
    def store(self) -> "ChunkStore":
        from retrieval.store import ChunkStore, open_client

        self.settings.home.mkdir(parents=True, exist_ok=True)
        client = open_client(self.settings.chroma_path, self.settings.chroma_url)
        return ChunkStore(client, self.settings.collection)

    @cached_property
    def knowledge_base(self) -> "KnowledgeBase":
        from retrieval.search import KnowledgeBase

        return KnowledgeBase(
            self.store,
            self.embedder,
            self.settings.max_question_chars,
            self.settings.lexical_weight,
            keyword_cache=self.settings.home / "keywords",
        )

    @property
    def ready(self) -> bool:
        """Whether the model and the knowledge base are loaded (the first question's wait is over)."""
        return "knowledge_base" in self.__dict__ and "embedder" in self.__dict__

    def warm(self) -> None:
        """Load the embedding model and open the knowledge base now (seconds, once per process),
        so an interface can show progress for it; safe to call from several threads at once."""
        with self._warming:
            self.knowledge_base.embedder.encode_one("warm up")

    @cached_property
    def chunker(self) -> "Chunker":
        from retrieval.chunking import Chunker

        return Chunker(self.settings.chunk_size, self.settings.chunk_overlap, self.settings.title_weight)

    @cached_property
    def ingestor(self) -> "Ingestor":
        from retrieval.ingest import Ingestor

        return Ingestor(self.store, self.embedder, self.chunker)

    def chat_model(self) -> Any:
        """The configured chat model (loaded on first use), or None for extractive answers."""
        if self._chat_model is None and self.settings.llm:
            from retrieval.answer import load_chat_model

            self._chat_model = load_chat_model(self.settings.llm)
        return self._chat_model

    @property
    def generates(self) -> bool:
        """Whether answers are written by a chat model (slow: worth a "looking…" message)."""
        return bool(self.settings.llm) or self._chat_model is not None

    # -- the feedback loop ----------------------------------------------------------------------

    @cached_property
    def config(self) -> "LoopConfig":
        return loop_config(self.settings, local_owner=self._local_owner)

    @cached_property
    def feedback_store(self) -> "FeedbackStore":
        """The feedback store, on a schema this version understands (or a clear refusal).

        A brand-new embedded SQLite database gets its schema created on first use; an existing
        database that is behind is refused with OutdatedSchema, so nothing writes to a schema it
        does not match.
        """
        from feedback.store import FeedbackStore

        if not self.settings.database_url:
            self.settings.home.mkdir(parents=True, exist_ok=True)
        store = FeedbackStore(self.settings.effective_database_url, policy=self.config.policy,
                              engine=self._engine())
        try:
            if store.is_sqlite and store.is_empty():
                store.upgrade()
            store.check_schema()
        except BaseException:
            store.close()
            raise
        return store

    def _engine(self) -> Any:
        from feedback import db

        return db.make_engine(self.settings.effective_database_url, options=self.settings.engine_options())

    @cached_property
    def loop(self) -> "FeedbackLoop":
        from feedback.loop import FeedbackLoop

        return FeedbackLoop(
            self.feedback_store,
            lambda: self.knowledge_base,
            self.config,
            chat_model=self.chat_model if self.settings.llm or self._chat_model is not None else None,
            events=self._events,
            is_moderator=self._is_moderator,
        )


def eval_world_opener(settings: "Settings | None" = None) -> Callable[[Any, Any], Any]:
    """`open_world` for `feedback.evaluation.run_eval`: a knowledge base of the data set's own in
    `home` (embedded Chroma and SQLite there, whatever the settings point at), corpus ingested."""
    from feedback.evaluation import EvalWorld

    def open_world(dataset: Any, home: Any) -> EvalWorld:
        from bot.settings import load_settings

        base = settings.model_dump() if settings is not None else {}
        base.update({"home": home, "database_url": None, "chroma_url": None, "collection": "askloop-eval"})
        services = Services(load_settings(**base))
        services.ingestor.run([dataset.corpus])
        return EvalWorld(services.knowledge_base, services.config, services.settings.home)

    return open_world
