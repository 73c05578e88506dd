"""The chunk store: one Chroma collection, embedded on disk or on a Chroma server.

We always pass our own vectors; Chroma's default embedding function would try to download a
model. Similarities are cosine (the collection is created with `hnsw:space=cosine`), returned
as `1 - distance` so larger is better everywhere above this module.

Every read that returns chunks returns only visible ones: a document's new chunks are written
staged and shown once its commit record names them (`retrieval.commits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from retrieval.cleaning import clean_text, storable
from retrieval.commits import DELETED, STAGED, describe, doc_ids_of, is_visible, records_name
from retrieval.types import Chunk

# Chroma refuses batches above its max_batch_size (~5k); stay well below on every backend.
_WRITE_BATCH = 1000
# Collection metadata key whose value changes with every ingest that changed chunks.
GENERATION_KEY = "askloop_generation"
# Commit records read or written per call.
_RECORD_BATCH = 500
# Which vectors the chunks hold (`Embedder.model_id`) and which backend made them: a process that
# embeds questions differently re-embeds the chunks first (`retrieval.ingest.Ingestor.reembed`).
EMBEDDING_KEY = "askloop_embedding"
BACKEND_KEY = "askloop_embedding_backend"


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached or opened; the message is fit for a person."""


@dataclass(frozen=True)
class ChunkMatch:
    chunk: Chunk
    similarity: float


def _chunk_from(chunk_id: str, text: str | None, meta: dict[str, Any] | None) -> Chunk:
    """A stored chunk as retrieval hands it on. Ingest cleans what it stores; a store written
    before it did may still hold a NUL or an escape sequence, which is removed here (a scan when
    there is none), so none reaches an answer or the database that records it."""
    meta = meta or {}
    return Chunk(
        chunk_id=chunk_id,
        doc_id=str(meta.get("doc_id", "")),
        text=clean_text(text or ""),
        title=clean_text(str(meta.get("title", ""))),
        source=storable(str(meta.get("source", ""))),
        section=clean_text(str(meta.get("section", ""))),
        position=int(meta.get("position", 0) or 0),
        fingerprint=str(meta.get("fingerprint", "")),
        origin=str(meta.get("origin", "")),
        doc_chunks=int(meta.get("doc_chunks", 0) or 0),
    )


def open_client(chroma_path: Path, chroma_url: str | None) -> Any:
    """A Chroma client: embedded `PersistentClient` by default, `HttpClient` when a URL is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        host = parsed.hostname or "127.0.0.1"
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(
                host=host, port=port, ssl=parsed.scheme == "https", settings=chroma_settings
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot reach the Chroma server at {chroma_url} ({exc.__class__.__name__})"
            ) from exc
        return client
    try:
        chroma_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(chroma_path), settings=chroma_settings)
    except Exception as exc:
        raise StoreUnavailable(f"cannot open the Chroma store in {chroma_path}: {exc}") from exc


class ChunkStore:
    def __init__(self, client: Any, name: str = "askloop") -> None:
        self._client = client
        self.name = name
        self._collection = self._open_collection()
        self._records = self._open_records()

    def _open_collection(self) -> Any:
        try:
            return self._client.get_or_create_collection(
                self.name, metadata={"hnsw:space": "cosine"}, embedding_function=None
            )
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the Chroma collection {self.name!r} ({exc.__class__.__name__})"
            ) from exc

    def _open_records(self) -> Any:
        try:
            return self._client.get_or_create_collection(records_name(self.name), embedding_function=None)
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the Chroma collection {records_name(self.name)!r} ({exc.__class__.__name__})"
            ) from exc

    def _call(self, what: str, fn: Any, *args: Any, records: bool = False, **kwargs: Any) -> Any:
        """Run a Chroma call on the chunks (or, with `records`, the commit records), turning
        connection failures into `StoreUnavailable`.

        One retry after re-opening the collections lets a restarted Chroma server recover by
        itself without restarting the bot.
        """
        try:
            return fn(self._records if records else self._collection, *args, **kwargs)
        except StoreUnavailable:
            raise
        except Exception:
            try:
                self._collection = self._open_collection()
                self._records = self._open_records()
                return fn(self._records if records else self._collection, *args, **kwargs)
            except StoreUnavailable as exc:
                raise StoreUnavailable(f"the vector store failed while {what}: {exc}") from exc
            except Exception as exc:
                raise StoreUnavailable(
                    f"the vector store failed while {what} ({exc.__class__.__name__}: {exc})"
                ) from exc

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], embeddings: np.ndarray, staged: bool = False) -> None:
        """Store chunks. `staged` chunks stay invisible until `commit` names their version
        (what ingest does); unstaged ones of a document without a record are visible at once."""
        extra = {STAGED: True} if staged else {}
        for start in range(0, len(chunks), _WRITE_BATCH):
            batch = chunks[start : start + _WRITE_BATCH]
            vectors = embeddings[start : start + _WRITE_BATCH]
            self._call(
                "writing chunks",
                lambda c, b=batch, v=vectors: c.upsert(
                    ids=[chunk.chunk_id for chunk in b],
                    embeddings=v,
                    documents=[chunk.text for chunk in b],
                    metadatas=[chunk.metadata() | extra for chunk in b],
                ),
            )

    def commit(self, versions: Mapping[str, str]) -> None:
        """Make each document's version (doc id → fingerprint) the one search sees: one record
        per document, so each switches whole, from its old chunks to its new ones."""
        items = list(versions.items())
        for start in range(0, len(items), _RECORD_BATCH):
            batch = items[start : start + _RECORD_BATCH]
            self._call(
                "committing documents",
                lambda c, b=batch: c.upsert(
                    ids=[doc_id for doc_id, _ in b],
                    embeddings=np.ones((len(b), 1), dtype=np.float32),  # records are never searched
                    metadatas=[{"fingerprint": fingerprint} for _, fingerprint in b],
                ),
                records=True,
            )

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        """Hide the documents at once (a record naming no version), delete their chunks, then
        their records: a deletion stopped halfway leaves them hidden, never half there."""
        ids = list(doc_ids)
        self.commit({doc_id: DELETED for doc_id in ids})
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            self._call(
                "deleting documents", lambda c, b=batch: c.delete(where={"doc_id": {"$in": b}})
            )
        for start in range(0, len(ids), _RECORD_BATCH):
            batch = ids[start : start + _RECORD_BATCH]
            self._call("deleting documents", lambda c, b=batch: c.delete(ids=b), records=True)

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        for start in range(0, len(chunk_ids), _WRITE_BATCH):
            batch = list(chunk_ids[start : start + _WRITE_BATCH])
            self._call("deleting chunks", lambda c, b=batch: c.delete(ids=b))

    def bump_generation(self, embedding: tuple[str, str] | None = None) -> None:
        """Mark that the chunks changed, so every process rebuilds what it derived from them
        (the keyword index). Kept in the collection's metadata: shared by all replicas.
        `embedding`: (`model_id`, backend) of the vectors just written, recorded with the mark."""
        import uuid

        values = {GENERATION_KEY: uuid.uuid4().hex}
        if embedding is not None:
            values |= {EMBEDDING_KEY: embedding[0], BACKEND_KEY: embedding[1]}
        self._set_metadata(values)

    def mark_embedding(self, model_id: str, backend: str) -> None:
        """Record which vectors the chunks hold (see `embedding`)."""
        self._set_metadata({EMBEDDING_KEY: model_id, BACKEND_KEY: backend})

    def _set_metadata(self, values: dict[str, str]) -> None:
        """Chroma replaces a collection's metadata as a whole (and refuses its `hnsw:` keys back):
        merge with what is there."""
        kept = {k: v for k, v in self._metadata().items() if not k.startswith("hnsw:")}
        self._call("marking a change", lambda c: c.modify(metadata=kept | values))

    # -- reads ----------------------------------------------------------------------------------
    def _metadata(self) -> dict[str, Any]:
        collection = self._call("reading the collection", lambda c: self._client.get_collection(c.name))
        return dict(collection.metadata or {})

    def generation(self) -> str | None:
        """The mark of the last ingest change (None for a store written before marks existed)."""
        value = self._metadata().get(GENERATION_KEY)
        return None if value is None else str(value)

    def committed(self, doc_ids: Sequence[str] | None = None) -> dict[str, str]:
        """doc id → the fingerprint of its visible version, for the documents that have a
        commit record (all of them, without `doc_ids`)."""
        found: dict[str, str] = {}
        if doc_ids is None:
            total = int(self._call("reading commit records", lambda c: c.count(), records=True))
            reads = [
                lambda c, o=offset: c.get(include=["metadatas"], limit=5000, offset=o)
                for offset in range(0, total, 5000)
            ]
        else:
            ids = list(dict.fromkeys(doc_ids))
            reads = [
                lambda c, b=ids[start : start + _RECORD_BATCH]: c.get(ids=b, include=["metadatas"])
                for start in range(0, len(ids), _RECORD_BATCH)
            ]
        for read in reads:
            result = self._call("reading commit records", read, records=True)
            for doc_id, meta in zip(result["ids"], result["metadatas"] or []):
                found[doc_id] = str((meta or {}).get("fingerprint", ""))
        return found

    def _visible(self, metadatas: Sequence[Mapping[str, Any] | None]) -> list[bool]:
        """Which of these chunks search may return (one read of their documents' records)."""
        if not metadatas:
            return []
        committed = self.committed(doc_ids_of(metadatas))
        return [is_visible(meta, committed) for meta in metadatas]
    def embedding(self) -> tuple[str | None, str | None]:
        """(`model_id`, backend) of the vectors the chunks hold; (None, None) for a store written
        before they were recorded (by the torch backend, the only one there was)."""
        meta = self._metadata()
        model_id, backend = meta.get(EMBEDDING_KEY), meta.get(BACKEND_KEY)
        return (None if model_id is None else str(model_id), None if backend is None else str(backend))

    def searchable_texts(self) -> Iterator[tuple[str, str, str, str]]:
        """(chunk_id, doc_id, title, text) of every visible chunk, paged: what the keyword index
        is built from."""
        committed = self.committed()
        for result in self.pages(["documents", "metadatas"], "reading chunks"):
            for chunk_id, text, meta in zip(result["ids"], result["documents"] or [], result["metadatas"] or []):
                if not is_visible(meta, committed):
                    continue
                meta = meta or {}
                yield chunk_id, str(meta.get("doc_id", "")), str(meta.get("title", "") or ""), text or ""

    def pages(self, include: list[str], what: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The whole collection (or its first `limit` chunks) in pages of 5,000: Chroma's `get`
        results with `include`. `what` names the read in errors."""
        total = self.count() if limit is None else min(self.count(), limit)
        page = 5000
        for offset in range(0, total, page):
            yield self._call(what, lambda c, o=offset: c.get(include=include, limit=page, offset=o))

    def chunk_ids(self) -> list[str]:
        """Every chunk id (ids only: a page of 5,000 costs milliseconds)."""
        return [i for page in self.pages([], "listing chunks") for i in page["ids"]]

    def chunks_by_id(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """These chunks (those that still exist), text and metadata, without their vectors."""
        if not chunk_ids:
            return []
        result = self._call(
            "reading chunks", lambda c: c.get(ids=list(chunk_ids), include=["documents", "metadatas"])
        )
        return [
            _chunk_from(i, t, m)
            for i, t, m in zip(result["ids"], result["documents"] or [], result["metadatas"] or [])
        ]

    def count(self) -> int:
        return int(self._call("counting chunks", lambda c: c.count()))

    def document_index(self, doc_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """doc_id → what ingest compares against and cleans up (`retrieval.commits.describe`):
        the visible version's fingerprint, source, origin, title, and the chunk ids stored.

        A document whose visible version lacks chunks (a write that failed halfway and could
        not be rolled back, in a store from before commit records) gets an empty fingerprint,
        so the next ingest rewrites it.

        With `doc_ids`, only those documents are looked up: re-ingesting a few files into a
        large store then costs milliseconds instead of a scan of every chunk (5 s at 100k).
        """
        rows: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for result in self._metadata_pages(doc_ids):
            for chunk_id, meta in zip(result["ids"], result["metadatas"] or []):
                meta = meta or {}
                rows.setdefault(str(meta.get("doc_id", "")), []).append((chunk_id, meta))
        committed = self.committed(sorted(rows)) if doc_ids is not None else self.committed()
        return {doc_id: describe(chunks, committed.get(doc_id)) for doc_id, chunks in rows.items()}

    def _metadata_pages(self, doc_ids: Sequence[str] | None) -> Iterator[dict[str, Any]]:
        if doc_ids is not None:
            ids = list(dict.fromkeys(doc_ids))
            for start in range(0, len(ids), 100):  # SQLite caps the variables of one statement
                batch = ids[start : start + 100]
                yield self._call(
                    "listing documents",
                    lambda c, b=batch: c.get(where={"doc_id": {"$in": b}}, include=["metadatas"]),
                )
            return
        yield from self.pages(["metadatas"], "listing documents")

    def query(
        self, embedding: np.ndarray, n: int, doc_ids: Sequence[str] | None = None
    ) -> list[ChunkMatch]:
        """The `n` chunks nearest to `embedding`, optionally only from the given documents.

        No `count()` first: Chroma returns fewer results (or none) when it has fewer, and a
        count costs more than the search itself on a large collection (a SQL COUNT per call).
        """
        if n <= 0:
            return []
        kwargs: dict[str, Any] = {
            "query_embeddings": [np.asarray(embedding, dtype=np.float32)],
            "n_results": n,
            "include": ["documents", "metadatas", "distances"],
        }
        if doc_ids:
            kwargs["where"] = (
                {"doc_id": doc_ids[0]} if len(doc_ids) == 1 else {"doc_id": {"$in": list(doc_ids)}}
            )
        result = self._call("searching", lambda c: c.query(**kwargs))
        matches = []
        metadatas = result["metadatas"][0]
        for chunk_id, text, meta, distance, visible in zip(
            result["ids"][0],
            result["documents"][0],
            metadatas,
            result["distances"][0],
            self._visible(metadatas),
        ):
            if visible:
                matches.append(ChunkMatch(_chunk_from(chunk_id, text, meta), 1.0 - float(distance)))
        return matches

    def match_chunks(self, embedding: np.ndarray, chunk_ids: Sequence[str]) -> list[ChunkMatch]:
        """These chunks (those that still exist), scored against `embedding` as `query` scores
        them: a read by id, for candidates another signal found, without a filtered search."""
        if not chunk_ids:
            return []
        result = self._call(
            "reading chunks",
            lambda c: c.get(ids=list(chunk_ids), include=["embeddings", "documents", "metadatas"]),
        )
        vectors = np.asarray(result["embeddings"], dtype=np.float32).reshape(len(result["ids"]), -1)
        if not len(vectors):
            return []
        query = np.asarray(embedding, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
        similarities = vectors @ query / np.maximum(norms, 1e-12)
        metadatas = result["metadatas"] or []
        return [
            ChunkMatch(_chunk_from(i, t, m), float(s))
            for i, t, m, s, visible in zip(result["ids"], result["documents"] or [], metadatas, similarities, self._visible(metadatas))
            if visible
        ]

    def get_chunks(self, doc_ids: Sequence[str]) -> list[Chunk]:
        if not doc_ids:
            return []
        where = {"doc_id": doc_ids[0]} if len(doc_ids) == 1 else {"doc_id": {"$in": list(doc_ids)}}
        result = self._call(
            "reading chunks", lambda c: c.get(where=where, include=["documents", "metadatas"])
        )
        metadatas = result["metadatas"] or []
        return [
            _chunk_from(i, t, m)
            for i, t, m, visible in zip(result["ids"], result["documents"] or [], metadatas, self._visible(metadatas))
            if visible
        ]
