"""Which document does a reference name? Ids, paths, URLs and titles, as people type them.

People cite documents the way they know them: the file they ingested (absolute, or relative to
where they ran the ingest), the page's URL, or its title — rarely by the internal id. The catalog
resolves all of these to one document id, and when nothing (or more than one document) matches
it says which documents come closest, so a typo is fixed instead of stored.
"""

from __future__ import annotations

import difflib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    source: str  # what answers show: a path or a URL
    origin: str  # the file it was ingested from ("" for corpus lines)


@dataclass(frozen=True)
class Resolution:
    """`doc` when exactly one document matches; else `candidates`, closest first."""

    reference: str
    doc: DocumentInfo | None
    candidates: list[DocumentInfo] = field(default_factory=list)
    ambiguous: bool = False


class _Index(Protocol):
    def document_index(self) -> dict[str, dict[str, object]]: ...

    def generation(self) -> str | None: ...


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


class DocumentCatalog:
    """The documents of a chunk store, re-read whenever an ingest changed the store."""

    def __init__(self, store: _Index) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cached: tuple[str | None, dict[str, DocumentInfo]] | None = None

    def documents(self) -> dict[str, DocumentInfo]:
        generation = self.store.generation()
        with self._lock:
            if self._cached is not None and self._cached[0] == generation and generation is not None:
                return self._cached[1]
        index = self.store.document_index()
        documents = {
            doc_id: DocumentInfo(doc_id, str(meta.get("title", "")), str(meta.get("source", "")),
                                 str(meta.get("origin", "")))
            for doc_id, meta in index.items() if doc_id
        }
        with self._lock:
            self._cached = (generation, documents)
        return documents

    def get(self, doc_id: str) -> DocumentInfo | None:
        return self.documents().get(doc_id)

    def resolve(self, reference: str, base_dir: Path | None = None) -> Resolution:
        """The document `reference` names: `doc:ID` or an id; a file path (absolute, or relative
        to `base_dir`, or matching the end of an ingested path); a URL a document was ingested
        with; or a title (case and spacing ignored)."""
        text = (reference or "").strip()
        documents = self.documents()
        if not text:
            return Resolution(reference, None)
        key = text[4:].strip() if text.startswith("doc:") else text
        if key in documents:
            return Resolution(reference, documents[key])
        for finder in (self._by_path, self._by_source, self._by_title):
            matches = finder(key, documents, base_dir)
            if len(matches) == 1:
                return Resolution(reference, matches[0])
            if matches:
                return Resolution(reference, None, sorted(matches, key=lambda d: d.doc_id)[:5], ambiguous=True)
        return Resolution(reference, None, self.closest(key, documents))

    @staticmethod
    def _by_path(key: str, documents: dict[str, DocumentInfo], base_dir: Path | None) -> list[DocumentInfo]:
        if "://" in key:
            return []
        wanted = {os.path.normpath(key)}
        expanded = Path(key).expanduser()
        if not expanded.is_absolute():
            wanted.add(os.path.normpath(str((base_dir or Path.cwd()) / expanded)))
        else:
            wanted.add(os.path.normpath(str(expanded)))
        exact = [d for d in documents.values() if {d.doc_id, d.origin, d.source} & wanted]
        if exact or "/" not in key.strip("/") and "." not in key:
            return exact
        tail = "/" + os.path.normpath(key).lstrip("./")
        return [d for d in documents.values() if any(p.endswith(tail) for p in (d.doc_id, d.origin, d.source) if p)]

    @staticmethod
    def _by_source(key: str, documents: dict[str, DocumentInfo], base_dir: Path | None) -> list[DocumentInfo]:
        if "://" not in key:
            return []
        stripped = key.rstrip("/")
        return [d for d in documents.values() if d.source.rstrip("/") == stripped]

    @staticmethod
    def _by_title(key: str, documents: dict[str, DocumentInfo], base_dir: Path | None) -> list[DocumentInfo]:
        wanted = _norm(key)
        return [d for d in documents.values() if d.title and _norm(d.title) == wanted]

    @staticmethod
    def closest(key: str, documents: dict[str, DocumentInfo], n: int = 5) -> list[DocumentInfo]:
        """The documents whose title, file name or id look most like `key`."""
        labels: dict[str, DocumentInfo] = {}
        for d in documents.values():
            for label in (d.title, Path(d.origin or d.doc_id).name, d.doc_id):
                if label:
                    labels.setdefault(_norm(label), d)
        found: list[DocumentInfo] = []
        for label in difflib.get_close_matches(_norm(key), list(labels), n=n * 2, cutoff=0.4):
            if labels[label] not in found:
                found.append(labels[label])
        return found[:n]

    def search_titles(self, text: str, limit: int = 20) -> list[DocumentInfo]:
        """Documents whose title or file name contains `text` (for pickers), closest first."""
        wanted = _norm(text)
        documents = self.documents()
        if not wanted:
            return sorted(documents.values(), key=lambda d: _norm(d.title or d.doc_id))[:limit]
        hits = [d for d in documents.values()
                if wanted in _norm(d.title) or wanted in _norm(Path(d.origin or d.doc_id).name)]
        hits.sort(key=lambda d: (not _norm(d.title).startswith(wanted), len(d.title), d.doc_id))
        return (hits or self.closest(text, documents, limit))[:limit]
