"""The ingest pipeline: files → documents → chunks → embeddings → Chroma.

Idempotent by construction: chunk ids derive from the document id and position, and every
chunk carries its document's fingerprint, so an unchanged document is skipped without being
embedded again and a changed one overwrites its chunks in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.chunking import Chunker
from retrieval.embeddings import Embedder
from retrieval.loaders import LoadError, load_all
from retrieval.store import ChunkStore
from retrieval.types import Chunk, SourceDocument

# Chunks encoded per call: large enough that the model's own length-sorting pays off.
ENCODE_BATCH = 512

Progress = Callable[[int, int], None]


@dataclass
class IngestReport:
    files: int = 0
    documents_added: int = 0
    documents_updated: int = 0
    documents_skipped: int = 0
    documents_removed: int = 0
    chunks_added: int = 0
    chunks_updated: int = 0
    chunks_removed: int = 0
    problems: list[LoadError] = field(default_factory=list)

    @property
    def documents_seen(self) -> int:
        return self.documents_added + self.documents_updated + self.documents_skipped

    @property
    def nothing_ingested(self) -> bool:
        """True when not a single document could be read: the command then fails."""
        return self.documents_seen == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "documents": {
                "added": self.documents_added,
                "updated": self.documents_updated,
                "skipped": self.documents_skipped,
                "removed": self.documents_removed,
            },
            "chunks": {
                "added": self.chunks_added,
                "updated": self.chunks_updated,
                "removed": self.chunks_removed,
            },
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
        }


def embedding_text(chunk: Chunk) -> str:
    """What the model sees: the title and section give a short chunk its context."""
    head = " — ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{head}\n{chunk.text}" if head else chunk.text


class Ingestor:
    def __init__(self, store: ChunkStore, embedder: Embedder, chunker: Chunker) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker

    def plan(
        self, documents: Iterable[SourceDocument], report: IngestReport
    ) -> tuple[list[Chunk], dict[str, list[str]]]:
        """Chunks to write, and for updated documents the old chunk ids that will be stale."""
        index = self.store.document_index()
        to_write: list[Chunk] = []
        stale: dict[str, list[str]] = {}
        for document in documents:
            chunks = self.chunker.split(document)
            if not chunks:
                report.problems.append(LoadError(document.source, "no text to index"))
                continue
            existing = index.get(document.doc_id)
            if existing and existing["fingerprint"] == chunks[0].fingerprint:
                report.documents_skipped += 1
                continue
            if existing:
                report.documents_updated += 1
                report.chunks_updated += len(chunks)
                new_ids = {c.chunk_id for c in chunks}
                stale[document.doc_id] = [i for i in existing["chunk_ids"] if i not in new_ids]
            else:
                report.documents_added += 1
                report.chunks_added += len(chunks)
            to_write.extend(chunks)
        return to_write, stale

    def write(self, chunks: Sequence[Chunk], progress: Progress | None = None) -> None:
        total = len(chunks)
        done = 0
        if progress:
            progress(0, total)
        for start in range(0, total, ENCODE_BATCH):
            batch = chunks[start : start + ENCODE_BATCH]
            vectors = self.embedder.encode([embedding_text(c) for c in batch])
            self.store.upsert(batch, vectors)
            done += len(batch)
            if progress:
                progress(done, total)

    def prune(
        self, ingested_files: set[str], kept_ids: set[str], report: IngestReport
    ) -> None:
        """Remove documents whose file is gone, or that a re-ingested corpus file no longer has."""
        removed: list[str] = []
        for doc_id, entry in self.store.document_index().items():
            if doc_id in kept_ids:
                continue
            source = entry["source"]
            path = source.split("#", 1)[0]
            origin_gone = not Path(path).exists() if path.startswith("/") else False
            dropped_from_file = path in ingested_files
            if origin_gone or dropped_from_file:
                removed.append(doc_id)
                report.chunks_removed += len(entry["chunk_ids"])
        if removed:
            self.store.delete_documents(removed)
        report.documents_removed += len(removed)

    def run(
        self, paths: Sequence[Path], prune: bool = False, progress: Progress | None = None
    ) -> IngestReport:
        report = IngestReport()
        documents: list[SourceDocument] = []
        ingested_files: set[str] = set()
        seen_ids: set[str] = set()
        for result in load_all(paths):
            report.problems.extend(result.problems)
            if result.documents:
                report.files += 1
                ingested_files.add(str(result.path))
            for document in result.documents:
                if document.doc_id in seen_ids:
                    report.problems.append(
                        LoadError(document.source, f"duplicate document id {document.doc_id!r}")
                    )
                    continue
                seen_ids.add(document.doc_id)
                documents.append(document)
        chunks, stale = self.plan(documents, report)
        self.write(chunks, progress)
        leftovers = [chunk_id for ids in stale.values() for chunk_id in ids]
        if leftovers:
            self.store.delete_chunks(leftovers)
            report.chunks_removed += len(leftovers)
        if prune:
            self.prune(ingested_files, seen_ids, report)
        return report
