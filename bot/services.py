"""Wiring: build the knowledge base (and everything on top of it) from settings, lazily.

Every interface (CLI, shell, Slack) goes through one `Services` object, so an answer given in
the terminal and one given in Slack take exactly the same path.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from bot.settings import Settings
from retrieval.answer import Answer, extractive_answer, llm_answer, load_chat_model
from retrieval.chunking import Chunker
from retrieval.embeddings import Embedder, shared_embedder
from retrieval.ingest import Ingestor
from retrieval.search import KnowledgeBase
from retrieval.store import ChunkStore, open_client
from retrieval.tuning import NoTuning, Tuning

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Services:
    def __init__(self, settings: Settings, chat_model: Any = None) -> None:
        self.settings = settings
        self._chat_model = chat_model

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
        return KnowledgeBase(self.store, self.embedder, self.settings.max_question_chars)

    @cached_property
    def chunker(self) -> Chunker:
        return Chunker(self.settings.chunk_size, self.settings.chunk_overlap)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder, self.chunker)

    @property
    def chat_model(self) -> Any:
        if self._chat_model is None and self.settings.llm:
            self._chat_model = load_chat_model(self.settings.llm)
        return self._chat_model

    def tuning(self) -> Tuning:
        """The active tuning version; the base index until feedback has been applied."""
        return NoTuning()

    def answer(self, question: str, k: int | None = None) -> Answer:
        tuning = self.tuning()
        result = self.knowledge_base.search(question, k or self.settings.top_k, tuning)
        threshold = self.settings.answer_threshold
        if self.chat_model is not None:
            return llm_answer(
                self.chat_model, result.question, result.hits, threshold, result.tuning_version
            )
        return extractive_answer(result.question, result.hits, threshold, result.tuning_version)
