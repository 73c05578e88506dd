"""Keyword (BM25) scores beside the vector search: the lexical half of hybrid retrieval.

A small embedding model places a question near others *about the same thing*; it is weaker at
telling apart neighbouring entries that differ by one word a person typed ("refund" vs "return",
"at risk" vs "at risk for severe disease"). BM25 scores exactly that. Search adds a bounded
keyword bonus to each candidate document's vector score (`KnowledgeBase.lexical_weight`), as
hybrid search does in other assistants, so the vector score still decides between documents
that match the question's words equally.

The index is rebuilt from the chunk store itself (its text and titles), so embedded and server
mode, and every replica, see the same index without a second store to keep in step. Ingest marks
each change with a new store generation; a search re-reads the generation at most every
`refresh_seconds` and, when it moved, rebuilds the index in the background.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.store import ChunkStore

log = logging.getLogger(__name__)

# Lexical candidates per question: documents that match the words best but that the vector
# search did not return are fetched (with their vector score) and compete on the hybrid score.
LEXICAL_CANDIDATES = 10
# Documents per question that keep a keyword score (the best ones); a large knowledge base
# matches common words in thousands of documents, and scoring them all would cost milliseconds.
KEPT_SCORES = 1000


def _bm25s() -> Any:
    """bm25s, imported without numba and scipy.

    bm25s imports both whenever they are installed (numba comes with `ranx`), which cost 0.8 s
    of a 3 s `askloop ask`; askloop uses bm25s's numpy backends only, which need neither (bm25s
    then treats them as absent). They stay importable by anyone else afterwards.
    """
    found = sys.modules.get("bm25s")
    if found is not None:
        return found
    hidden = [name for name in ("numba", "scipy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import bm25s
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return bm25s


def tokens(texts: list[str], as_ids: bool = False) -> Any:
    """Lower-cased, English stop words dropped, stemmed ("refunds" matches "refund"). `as_ids`
    returns token ids and their vocabulary instead of strings: what indexing needs, in a
    fraction of the memory (100,000 chunks are millions of tokens)."""
    bm25s = _bm25s()
    return bm25s.tokenize(texts, stopwords="en", return_ids=as_ids, show_progress=False, stemmer=_stemmer())


_local = threading.local()


def _stemmer() -> Any:
    """One stemmer per thread: PyStemmer's objects must not be shared between threads."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


@dataclass(frozen=True)
class KeywordScores:
    """Per-document BM25 scores for one question, scaled so the best document scores 1."""

    by_doc: dict[str, float]

    def best(self, n: int) -> list[str]:
        return [d for d, _ in sorted(self.by_doc.items(), key=lambda item: -item[1])[:n]]


class LexicalIndex:
    """BM25 over every chunk's title and text; a document scores as its best chunk.

    It also knows which chunks each document has, so search can read a keyword candidate's
    chunks by id (milliseconds) instead of a vector search filtered to that document (tens of
    milliseconds at 100,000 chunks), and each document's title as the store has it (`titles`:
    what the title rule of a learned tuning compares questions with).
    """

    def __init__(self, entries: Iterable[tuple[str, str, str, str]]) -> None:
        bm25s = _bm25s()

        chunk_ids: list[str] = []
        doc_ids: list[str] = []
        texts: list[str] = []
        titles: dict[str, str] = {}
        for chunk_id, doc_id, title, text in entries:
            chunk_ids.append(chunk_id)
            doc_ids.append(doc_id)
            texts.append(f"{title}\n{text}")
            if title.strip():
                titles.setdefault(doc_id, title)
        self.titles: dict[str, str] = titles
        self._bm25 = bm25s.BM25()
        if texts:
            self._bm25.index(tokens(texts, as_ids=True), show_progress=False)
        self._set_chunks(chunk_ids, doc_ids)

    def _set_chunks(self, chunk_ids: list[str], doc_ids: list[str]) -> None:
        self._chunk_ids, self._doc_ids = chunk_ids, doc_ids
        self._chunks: dict[str, list[str]] = {}
        for chunk_id, doc_id in zip(chunk_ids, doc_ids):
            self._chunks.setdefault(doc_id, []).append(chunk_id)
        self.docs = sorted(self._chunks)
        position = {d: i for i, d in enumerate(self.docs)}
        self._chunk_doc = np.asarray([position[d] for d in doc_ids], dtype=np.int64)

    def save(self, directory: Path) -> None:
        """Write the index to `directory` (made whole or not at all: written beside, then renamed)."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            if len(self._chunk_ids):
                self._bm25.save(str(partial), show_progress=False)
            chunks = [self._chunk_ids, self._doc_ids, self.titles]
            (partial / "chunks.json").write_text(json.dumps(chunks), encoding="utf-8")
            os.replace(partial, directory)
        except OSError:  # another process saved the same generation first, or the disk is full
            shutil.rmtree(partial, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        bm25s = _bm25s()

        chunk_ids, doc_ids, *rest = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        if not rest:  # the cache then builds the index again from the store, and saves it whole
            raise ValueError(f"{directory} was saved before keyword indexes kept document titles")
        index = cls.__new__(cls)
        index.titles = dict(rest[0])
        index._bm25 = bm25s.BM25.load(str(directory), show_progress=False) if chunk_ids else bm25s.BM25()
        index._set_chunks(list(chunk_ids), list(doc_ids))
        return index

    def __len__(self) -> int:
        return len(self._chunk_doc)

    def chunk_ids(self, doc_id: str) -> list[str]:
        """The document's chunks as they were when the index was built ([] if it was not there)."""
        return list(self._chunks.get(doc_id, ()))

    def scores(self, question: str) -> KeywordScores:
        query = tokens([question])[0]
        if not query or not len(self._chunk_doc):
            return KeywordScores({})
        chunk_scores = np.asarray(self._bm25.get_scores(query), dtype=np.float32)
        doc_scores = np.zeros(len(self.docs), dtype=np.float32)
        np.maximum.at(doc_scores, self._chunk_doc, chunk_scores)
        top = float(doc_scores.max(initial=0.0))
        if top <= 0.0:
            return KeywordScores({})
        hit = np.flatnonzero(doc_scores > 0)
        if len(hit) > KEPT_SCORES:  # the rest would add next to nothing to any candidate
            hit = hit[np.argpartition(-doc_scores[hit], KEPT_SCORES)[:KEPT_SCORES]]
        return KeywordScores({self.docs[i]: float(doc_scores[i] / top) for i in hit})


class LexicalIndexCache:
    """The lexical index of one chunk store, rebuilt when ingest changed the store.

    The first index is built when first needed; later rebuilds run in a background thread while
    searches keep using the previous index (keyword scores lag an ingest by the rebuild time,
    seconds at 100,000 chunks, instead of one question waiting for it).
    """

    def __init__(self, store: ChunkStore, refresh_seconds: float = 5.0, cache_dir: Path | None = None) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._generation: str | None = None
        self._index: LexicalIndex | None = None
        self._rebuilding: threading.Thread | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._checked = float("-inf")

    def index(self) -> LexicalIndex:
        with self._lock:
            now = time.monotonic()
            if self._index is not None and now - self._checked < self.refresh_seconds:
                return self._index
            generation = self.store.generation()
            self._checked = now
            if self._index is None:
                self._index, self._generation = self._build(generation), generation
            elif generation != self._generation and self._rebuilding is None:
                self._rebuilding = threading.Thread(
                    target=self._rebuild, args=(generation,), name="askloop-keyword-index", daemon=True
                )
                self._rebuilding.start()
            return self._index

    def current(self) -> LexicalIndex | None:
        """The index as it is now, without checking for changes (None before the first build)."""
        return self._index

    def wait(self, timeout: float | None = None) -> None:
        """Until a background rebuild (if any) has finished: for tests and benchmarks."""
        thread = self._rebuilding
        if thread is not None:
            thread.join(timeout)

    def _saved(self, generation: str | None) -> Path | None:
        if self.cache_dir is None or generation is None:
            return None
        return self.cache_dir / self.store.name / generation

    def _build(self, generation: str | None) -> LexicalIndex:
        """The index of this generation: from the disk cache when a process already built it
        (a one-shot `askloop ask` then starts in milliseconds), else from the store, then saved."""
        path = self._saved(generation)
        if path is not None and path.is_dir():
            try:
                return LexicalIndex.load(path)
            except Exception:  # damaged, or half-deleted by a process that saved a newer one
                log.warning("could not load the saved keyword index %s; building it", path, exc_info=True)
                shutil.rmtree(path, ignore_errors=True)
        index = LexicalIndex(self.store.searchable_texts())
        if path is not None:
            index.save(path)
            for old in path.parent.iterdir():  # older generations are of no use to anyone
                if old != path and not old.name.startswith("."):
                    shutil.rmtree(old, ignore_errors=True)
        return index

    def _rebuild(self, generation: str | None) -> None:
        try:
            index = self._build(generation)
            with self._lock:
                self._index, self._generation = index, generation
        except Exception:  # the store went away: keep the old index, try again on the next check
            log.warning("could not rebuild the keyword index", exc_info=True)
        finally:
            with self._lock:
                self._rebuilding = None
