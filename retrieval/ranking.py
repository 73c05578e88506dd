"""From chunk matches to ranked documents."""

from __future__ import annotations

from collections.abc import Iterable

from retrieval.store import ChunkMatch
from retrieval.types import Hit


def fold_to_documents(matches: Iterable[ChunkMatch]) -> list[Hit]:
    """One hit per document, scored by its best chunk, whose text becomes the passage shown."""
    best: dict[str, Hit] = {}
    for match in matches:
        chunk = match.chunk
        current = best.get(chunk.doc_id)
        if current is None or match.similarity > current.score:
            best[chunk.doc_id] = Hit(
                doc_id=chunk.doc_id,
                title=chunk.title,
                source=chunk.source,
                score=match.similarity,
                passage=chunk.text,
                chunk_id=chunk.chunk_id,
                section=chunk.section,
                base_score=match.similarity,
            )
    return sorted(best.values(), key=lambda h: h.score, reverse=True)


def merge_hits(primary: list[Hit], extra: Iterable[Hit]) -> list[Hit]:
    """Add candidates not already present (by document id)."""
    seen = {hit.doc_id for hit in primary}
    merged = list(primary)
    for hit in extra:
        if hit.doc_id not in seen:
            seen.add(hit.doc_id)
            merged.append(hit)
    return merged
