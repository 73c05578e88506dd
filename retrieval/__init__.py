"""The knowledge base: loading, chunking, embedding, the Chroma store, ranking and answer text.

Knows nothing of SQL or Slack; `feedback` and `bot` build on it.
"""

from retrieval.types import Chunk, Hit, SourceDocument

__all__ = ["Chunk", "Hit", "SourceDocument"]
