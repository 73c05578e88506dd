"""Split documents into chunks small enough to embed well, keeping their section headings.

Markdown (and HTML, converted to Markdown on load) is split on headings first, so a chunk
never straddles two sections and can name the one it came from.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from retrieval.types import Chunk, SourceDocument

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
_PAGE = re.compile(r"\f\[page (\d+)\]\n")


def chunk_id(doc_id: str, position: int, fingerprint: str = "") -> str:
    """Same document, same content, same chunking → same id; any change → new ids.

    New content never overwrites old chunks in place, so a failed re-ingest leaves the old
    version whole, and an answer that recorded a chunk id points at the text it showed.
    """
    key = f"{doc_id}\x00{fingerprint}\x00{position}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Chunker:
    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 100, title_weight: float = 1.0) -> None:
        """`title_weight`: how much of the document title's own vector each chunk vector holds
        (see `retrieval.ingest.embed_chunks`); 0 embeds chunks alone."""
        self.chunk_size = chunk_size
        self.chunk_overlap = min(chunk_overlap, chunk_size // 2)
        self.title_weight = max(0.0, float(title_weight))
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=self.chunk_overlap
        )
        self._markdown = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)

    @property
    def signature(self) -> str:
        """Part of every chunk's fingerprint: changing the chunk size or the title weight
        re-embeds everything on the next ingest."""
        base = f"chunks:{self.chunk_size}:{self.chunk_overlap}"
        return f"{base}:title{self.title_weight:g}" if self.title_weight else base

    def _sections(self, document: SourceDocument) -> list[tuple[str, str]]:
        if document.kind == "markdown":
            pieces = self._markdown.split_text(document.text)
            sections = []
            for piece in pieces:
                heading = " › ".join(
                    piece.metadata[key] for _, key in _HEADERS if piece.metadata.get(key)
                )
                sections.append((heading, piece.page_content))
            return sections or [("", document.text)]
        if document.kind == "pdf":
            parts = _PAGE.split(document.text)
            # split() yields [before, page, text, page, text, ...]
            return [(f"page {parts[i]}", parts[i + 1]) for i in range(1, len(parts) - 1, 2)]
        return [("", document.text)]

    def split(self, document: SourceDocument) -> list[Chunk]:
        fingerprint = f"{document.fingerprint}:{self.signature}"
        chunks: list[Chunk] = []
        for section, text in self._sections(document):
            for piece in self._splitter.split_text(text):
                piece = piece.strip()
                if not piece:
                    continue
                position = len(chunks)
                chunks.append(
                    Chunk(
                        chunk_id=chunk_id(document.doc_id, position, fingerprint),
                        doc_id=document.doc_id,
                        text=piece,
                        title=document.title,
                        source=document.source,
                        section=section,
                        position=position,
                        fingerprint=fingerprint,
                        origin=document.origin,
                    )
                )
        return [replace(chunk, doc_chunks=len(chunks)) for chunk in chunks]
