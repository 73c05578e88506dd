"""The ingest pipeline: files → documents → chunks → embeddings → Chroma.

Idempotent by construction: chunk ids derive from the document id, its content fingerprint and
the position, so an unchanged document is skipped without being embedded again, and a changed
one gets new chunks beside its old ones. New chunks are written staged, invisible to search;
when all of them are stored, one commit record per document switches search to them (see
`retrieval.commits`), and only then are the old ones deleted. A run killed at any point leaves
every document whole: the old version, or the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.chunk_vectors import embed_chunks, embedding_text
from retrieval.chunking import Chunker
from retrieval.embeddings import Embedder
from retrieval.loaders import LoadError, load_all
from retrieval.store import ChunkStore
from retrieval.types import Chunk, SourceDocument

# Chunks encoded per call: large enough that the model's own length-sorting pays off.
ENCODE_BATCH = 512

# Up to this many documents per run, the store is asked about those documents only.
LOOKUP_BY_ID_MAX = 200

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)


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
    chunks_reembedded: int = 0  # chunks of other vectors re-embedded first (retrieval.reembed)
    problems: list[LoadError] = field(default_factory=list)

    @property
    def documents_seen(self) -> int:
        return self.documents_added + self.documents_updated + self.documents_skipped

    @property
    def nothing_ingested(self) -> bool:
        """True when not a single document could be read: the command then fails."""
        return self.documents_seen == 0

    @property
    def unusable_paths(self) -> list[str]:
        """Paths given to ingest that are missing, not a regular file or of an unsupported kind
        (not files that failed to read): the command fails after ingesting the rest."""
        return [p.path for p in self.problems if p.unusable_path]

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
                "reembedded": self.chunks_reembedded,
            },
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
            "unusable_paths": self.unusable_paths,
        }


class Ingestor:
    def __init__(self, store: ChunkStore, embedder: Embedder, chunker: Chunker) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker

    def plan(
        self, documents: Iterable[SourceDocument], report: IngestReport
    ) -> tuple[list[Chunk], dict[str, str], dict[str, list[str]]]:
        """Chunks to write; the version (fingerprint) to commit for each new or changed
        document; and the chunk ids that are stale once it is committed (the old version's, and
        leftovers of runs that were killed, which are deleted even for unchanged documents)."""
        documents = list(documents)
        ids = [d.doc_id for d in documents]
        # Looking documents up by id costs ~1 ms each; listing the whole store ~50 µs a chunk.
        index = self.store.document_index(ids if len(ids) <= LOOKUP_BY_ID_MAX else None)
        to_write: list[Chunk] = []
        commits: dict[str, str] = {}
        stale: dict[str, list[str]] = {}
        for document in documents:
            chunks = self.chunker.split(document)
            if not chunks:
                report.problems.append(LoadError(document.source, "no text to index"))
                continue
            fingerprint = chunks[0].fingerprint
            new_ids = {c.chunk_id for c in chunks}
            existing = index.get(document.doc_id)
            if existing and existing["fingerprint"] == fingerprint:
                report.documents_skipped += 1
                leftovers = [i for i in existing["chunk_ids"] if i not in new_ids]
                if leftovers:
                    stale[document.doc_id] = leftovers
                continue
            if existing:
                stale[document.doc_id] = [i for i in existing["chunk_ids"] if i not in new_ids]
            if existing and existing["live_ids"]:
                report.documents_updated += 1
                report.chunks_updated += len(chunks)
                report.chunks_removed += max(0, len(existing["live_ids"]) - len(chunks))
            else:  # new, or only ever written in part by a run that did not finish
                report.documents_added += 1
                report.chunks_added += len(chunks)
            commits[document.doc_id] = fingerprint
            if existing and fingerprint in existing["complete"]:
                continue  # written whole by a run that was killed before committing it
            to_write.extend(chunks)
        return to_write, commits, stale

    def write(self, chunks: Sequence[Chunk], progress: Progress | None = None) -> None:
        """Embed and store `chunks`, staged (invisible until committed): all of them, or (after
        a failure) none.

        Chunks are embedded in length order, so each model batch pads little (what the bare
        encoder gains by sorting all its input), and each batch's upsert runs in a thread while
        the next batch is embedded. On any failure, including Ctrl-C, what was written is
        deleted again before the error goes on: new content never overwrote old chunks (ids
        include the fingerprint), so the store is back to its previous state.
        """
        ordered = sorted(chunks, key=lambda c: len(embedding_text(c)))
        total = len(ordered)
        done = 0
        if progress:
            progress(0, total)
        written: list[str] = []
        titles: dict[str, np.ndarray] = {}  # a document's chunks land in different batches
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="askloop-upsert") as pool:
                pending: Future[None] | None = None
                pending_size = 0
                for start in range(0, total, ENCODE_BATCH):
                    batch = ordered[start : start + ENCODE_BATCH]
                    vectors = embed_chunks(self.embedder, batch, self.chunker.title_weight, titles)
                    if pending is not None:
                        pending.result()
                        done += pending_size
                        if progress:
                            progress(done, total)
                    written.extend(c.chunk_id for c in batch)
                    pending, pending_size = pool.submit(self.store.upsert, batch, vectors, staged=True), len(batch)
                if pending is not None:
                    pending.result()
                    done += pending_size
                    if progress:
                        progress(done, total)
        except BaseException:
            self._roll_back(written)
            raise

    def _roll_back(self, chunk_ids: list[str]) -> None:
        if not chunk_ids:
            return
        try:
            self.store.delete_chunks(chunk_ids)
        except Exception:  # the store is down: the next ingest repairs (see document_index)
            log.warning("could not roll back %d chunks after a failed ingest", len(chunk_ids))

    def prune(
        self, ingested_files: set[str], kept_ids: set[str], report: IngestReport
    ) -> None:
        """Remove documents whose file is gone, or that a re-ingested corpus file no longer has."""
        removed: list[str] = []
        for doc_id, entry in self.store.document_index().items():
            if doc_id in kept_ids:
                continue
            # `origin` is the file; older chunks only have `source` (a path, path#id or a URL)
            path = entry.get("origin") or entry["source"].split("#", 1)[0]
            is_file = path.startswith("/")
            origin_gone = is_file and not Path(path).exists()
            dropped_from_file = path in ingested_files
            if origin_gone or dropped_from_file:
                removed.append(doc_id)
                report.chunks_removed += len(entry["live_ids"])
        if removed:
            self.store.delete_documents(removed)
        report.documents_removed += len(removed)

    def reembed(self, progress: Progress | None = None) -> int:
        """Re-embed every stored chunk if the store holds vectors of another model or backend
        (see `retrieval.reembed`); returns how many chunks were re-embedded."""
        from retrieval.reembed import reembed

        return reembed(self.store, self.embedder, self.chunker.title_weight, progress)

    def run(
        self, paths: Sequence[Path], prune: bool = False, progress: Progress | None = None
    ) -> IngestReport:
        report = IngestReport()
        # First, so the chunks written below join a store of the same vectors.
        report.chunks_reembedded = self.reembed(progress)
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
        chunks, commits, stale = self.plan(documents, report)
        self.write(chunks, progress)
        try:
            # Only now that every new chunk is stored does search switch to them, document by
            # document; then the replaced versions go.
            if commits:
                self.store.commit(commits)
            leftovers = [chunk_id for ids in stale.values() for chunk_id in ids]
            if leftovers:
                self.store.delete_chunks(leftovers)
            if prune:
                self.prune(ingested_files, seen_ids, report)
        finally:
            if commits or report.documents_removed or report.chunks_removed:
                self._mark_changed()
        return report

    def _mark_changed(self) -> None:
        """Tell every process (replicas included) to rebuild its keyword index, and record which
        vectors the chunks hold."""
        try:
            self.store.bump_generation((self.embedder.model_id, self.embedder.backend))
        except Exception:  # searching still works; keyword scores lag until the next change
            log.warning("could not mark the knowledge base as changed", exc_info=True)
