"""Split documents into chunks small enough to embed well, keeping their sections and structure.

Markdown (and HTML, converted to Markdown on load) is split on its h1–h3 headings first, so a
chunk never straddles two sections and can name the one it came from. Within a section, whole
blocks are packed into chunks: a table, a code block or a list item is not cut where it fits in
a chunk. One that is larger than a chunk is split where it stays valid Markdown: a table between
rows, each piece with the table's header row again; a code block between lines, each piece in
its own fences; a list between items. Paragraphs longer than a chunk are split at paragraph,
line and word boundaries (LangChain's `RecursiveCharacterTextSplitter`), with overlap.

Plain text, PDF pages and corpus entries are not Markdown and are split by the character
splitter alone, as before.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from functools import cached_property
from typing import Any

from retrieval.markdown_blocks import Block, fence_parts, parse
from retrieval.types import Chunk, SourceDocument

_PAGE = re.compile(r"\f\[page (\d+)\]\n")
SECTION_LEVELS = 3  # h1–h3 start sections; deeper headings stay inside their section's text
# Part of every Markdown chunk's fingerprint: a change to how Markdown is chunked (or to the
# section head embedded with each chunk) re-embeds Markdown and HTML documents, and only them,
# once, on the next ingest. 2: chunks keep tables, code and lists whole; the embedded head names
# the title once.
MARKDOWN_FORMAT = "md2"


def chunk_id(doc_id: str, position: int, fingerprint: str = "") -> str:
    """Same document, same content, same chunking → same id; any change → new ids.

    New content never overwrites old chunks in place, so a failed re-ingest leaves the old
    version whole, and an answer that recorded a chunk id points at the text it showed.
    """
    key = f"{doc_id}\x00{fingerprint}\x00{position}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def section_within(title: str, section: str) -> str:
    """The section path without its first heading when that heading is the title itself (a
    Markdown document's title is its first heading): "Holidays › Sick leave" in "Holidays" is
    "Sick leave". What is shown after the title, and embedded after it, so it is said once."""
    head, sep, rest = section.partition(" › ")
    return rest if head and _same(head, title) else section


def titled_section(title: str, section: str) -> str:
    """Title and section path, the title said once: "Holidays › Sick leave"."""
    within = section_within(title, section)
    return f"{title} › {within}" if title and within else title or within


class Chunker:
    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 100, title_weight: float = 1.0) -> None:
        """`title_weight`: how much of the document title's own vector each chunk vector holds
        (see `retrieval.ingest.embed_chunks`); 0 embeds chunks alone."""
        self.chunk_size = chunk_size
        self.chunk_overlap = min(chunk_overlap, chunk_size // 2)
        self.title_weight = max(0.0, float(title_weight))

    # The splitter comes from LangChain (0.3 s to import): made when the first document is split.
    @cached_property
    def _splitter(self) -> Any:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)

    @property
    def signature(self) -> str:
        """Part of every chunk's fingerprint: changing the chunk size or the title weight
        re-embeds everything on the next ingest."""
        base = f"chunks:{self.chunk_size}:{self.chunk_overlap}"
        return f"{base}:title{self.title_weight:g}" if self.title_weight else base

    # -- Markdown --------------------------------------------------------------------------------
    def _markdown_sections(self, text: str) -> list[tuple[str, list[Block]]]:
        sections: list[tuple[str, list[Block]]] = []
        path: dict[int, str] = {}
        current: list[Block] = []
        heading = ""
        for block in parse(text):
            if block.kind == "heading" and block.level <= SECTION_LEVELS:
                if current:
                    sections.append((heading, current))
                current = []
                path = {level: name for level, name in path.items() if level < block.level}
                path[block.level] = block.heading
                heading = " › ".join(path[level] for level in sorted(path) if path[level])
            else:
                current.append(block)
        if current:
            sections.append((heading, current))
        return sections

    def _pieces(self, block: Block) -> list[tuple[str, str]]:
        """(text, joiner) parts of one block, each within the chunk size where the block allows:
        the joiner is what goes before the part when it follows the previous one in a chunk."""
        size = self.chunk_size
        if block.kind == "list":
            items = list(block.items) or [block.text]
            if len(block.text) <= size:
                return [(block.text, "\n\n")]
            parts: list[tuple[str, str]] = []
            for item in items:
                for n, piece in enumerate([item] if len(item) <= size else self._splitter.split_text(item)):
                    parts.append((piece, "\n\n" if not parts or n else "\n"))
            return parts
        if len(block.text) <= size:
            return [(block.text, "\n\n")]
        if block.kind == "table":
            lines = block.text.split("\n")
            return [(p, "\n\n") for p in _groups(lines[2:], size, head=lines[:2])]
        if block.kind == "fence":
            opening, body, closing = fence_parts(block)
            budget = size - len(opening) - len(closing) - 2
            body = [s for line in body for s in _slices(line, max(budget, 1))]
            return [(f"{opening}\n{p}\n{closing}", "\n\n") for p in _groups(body, size - len(opening) - len(closing) - 2)]
        if block.kind == "code":
            lines = [s for line in block.text.split("\n") for s in _slices(line, size)]
            return [(p, "\n\n") for p in _groups(lines, size)]
        return [(p, "\n\n") for p in self._splitter.split_text(block.text)]

    def _pack(self, blocks: list[Block]) -> list[str]:
        """Whole parts, packed in order into chunks of at most `chunk_size` characters; a short
        last paragraph (at most the overlap) is repeated at the start of the next chunk, as the
        character splitter's overlap does ("For example:" before a code block)."""
        chunks: list[str] = []
        current: list[str] = []
        length = 0
        last_kind = ""
        for block in blocks:
            for text, joiner in self._pieces(block):
                added = len(text) + (len(joiner) if current else 0)
                if current and length + added > self.chunk_size:
                    chunks.append("".join(current))
                    carry = current[-1].lstrip("\n")
                    keep = last_kind == "paragraph" and len(carry) <= self.chunk_overlap
                    if keep and len(carry) + 2 + len(text) <= self.chunk_size:
                        current, length = [carry], len(carry)
                    else:
                        current, length = [], 0
                    added = len(text) + (len(joiner) if current else 0)
                current.append((joiner if current else "") + text)
                length += added
                last_kind = block.kind
        if current:
            chunks.append("".join(current))
        return chunks

    # -- every kind ------------------------------------------------------------------------------
    def _sections(self, document: SourceDocument) -> list[tuple[str, list[str]]]:
        if document.kind == "markdown":
            return [(heading, self._pack(blocks)) for heading, blocks in self._markdown_sections(document.text)]
        if document.kind == "pdf":
            parts = _PAGE.split(document.text)
            # split() yields [before, page, text, page, text, ...]
            return [
                (f"page {parts[i]}", self._splitter.split_text(parts[i + 1]))
                for i in range(1, len(parts) - 1, 2)
            ]
        return [("", self._splitter.split_text(document.text))]

    def split(self, document: SourceDocument) -> list[Chunk]:
        fingerprint = f"{document.fingerprint}:{self.signature}"
        if document.kind == "markdown":
            fingerprint += f":{MARKDOWN_FORMAT}"
        chunks: list[Chunk] = []
        for section, pieces in self._sections(document):
            for piece in pieces:
                piece = piece.strip("\n").rstrip()
                if not piece.strip():
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


def _slices(line: str, width: int) -> list[str]:
    """A line longer than `width` (minified code, a data URI) in pieces of `width`."""
    return [line[i : i + width] for i in range(0, len(line), width)] or [""]


def _groups(lines: list[str], size: int, head: list[str] | None = None) -> list[str]:
    """Consecutive lines grouped into texts of at most `size` characters (each with `head`
    first); a line that alone exceeds the size is a group of its own, never cut."""
    head = head or []
    base = sum(len(line) + 1 for line in head)
    groups: list[str] = []
    current: list[str] = []
    length = base
    for line in lines:
        if current and length + len(line) + 1 > size:
            groups.append("\n".join(head + current))
            current, length = [], base
        current.append(line)
        length += len(line) + 1
    if current or not groups:
        groups.append("\n".join(head + current))
    return groups
