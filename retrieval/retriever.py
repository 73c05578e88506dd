"""askloop's retrieval as a LangChain retriever, for use in anyone's own chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from retrieval.search import KnowledgeBase
from retrieval.tuning import Tuning


class AskloopRetriever(BaseRetriever):
    """Top-k documents (best passage as content) with score, title and source in metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    knowledge_base: Any
    k: int = 5
    tuning: Any = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        kb: KnowledgeBase = self.knowledge_base
        tuning: Tuning | None = self.tuning() if callable(self.tuning) else self.tuning
        result = kb.search(query, k=self.k, tuning=tuning)
        return [
            Document(
                page_content=hit.passage,
                id=hit.chunk_id or hit.doc_id,
                metadata={
                    "doc_id": hit.doc_id,
                    "title": hit.title,
                    "source": hit.source,
                    "section": hit.section,
                    "score": hit.score,
                    "rank": rank,
                    "tuning_version": result.tuning_version,
                },
            )
            for rank, hit in enumerate(result.hits, 1)
        ]
