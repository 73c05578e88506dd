"""Plain value types shared by every stage of retrieval."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class SourceDocument:
    """One knowledge-base item as loaded, before chunking.

    `fingerprint` is a hash of everything that affects its chunks, so re-ingesting an unchanged
    document can be skipped without re-embedding it.
    """

    doc_id: str
    title: str
    source: str
    text: str
    kind: str = "text"
    fingerprint: str = ""
    origin: str = ""  # the file it was loaded from (for --prune); `source` may be a URL


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    title: str
    source: str
    section: str = ""
    position: int = 0
    fingerprint: str = ""
    origin: str = ""
    doc_chunks: int = 0  # how many chunks its document has: lets ingest spot a half-written one

    def metadata(self) -> dict[str, str | int]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "section": self.section,
            "position": self.position,
            "fingerprint": self.fingerprint,
            "origin": self.origin,
            "doc_chunks": self.doc_chunks,
        }


@dataclass(frozen=True)
class Hit:
    """A document retrieved for a question: its best chunk's score and passage.

    `base_score` is the plain similarity; `score` is what ranking made of it (equal to
    `base_score` when no tuning applies). `reasons` says which learned adjustments moved it.
    """

    doc_id: str
    title: str
    source: str
    score: float
    passage: str
    chunk_id: str = ""
    section: str = ""
    base_score: float = 0.0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def rescored(self, score: float, reason: str | None = None) -> "Hit":
        reasons = self.reasons + ((reason,) if reason else ())
        return replace(self, score=score, reasons=reasons)

    def as_dict(self) -> dict[str, object]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "score": round(self.score, 4),
            "passage": self.passage,
        }
