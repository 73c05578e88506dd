"""Markdown as a list of top-level blocks, each with its source lines verbatim.

Chunking and answer text both need to know where a table, a code block or a list begins and
ends, so that neither cuts one in the middle: a table row cut in half, or a code block without
its opening fence, is not Markdown any more, and indentation is part of code. The blocks come
from markdown-it-py (CommonMark, plus GitHub tables), which reports each block's line range;
the text of a block is those lines as they are in the document. Lines no block claims (link
reference definitions) are kept as paragraphs, so splitting a text into blocks and joining them
again loses no words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# markdown-it token types that open a block, and the kind of block they open
_OPENERS = {
    "paragraph_open": "paragraph",
    "heading_open": "heading",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "blockquote_open": "quote",
    "table_open": "table",
}
_SINGLE = {"fence": "fence", "code_block": "code", "html_block": "html", "hr": "rule"}


@dataclass(frozen=True)
class Block:
    """`kind`: paragraph, heading, list, quote, table, fence, code (indented), html or rule.
    `heading`/`level` for headings; `items` for lists: each top-level item's lines."""

    kind: str
    text: str
    level: int = 0
    heading: str = ""
    items: tuple[str, ...] = field(default_factory=tuple)


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    # block structure only: inline parsing (emphasis, links) is not needed and costs most time
    return MarkdownIt("commonmark").enable("table").disable("inline")


def _lines(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end]).rstrip()


def parse(text: str) -> list[Block]:
    """The top-level blocks of `text`, in order."""
    lines = text.split("\n")
    tokens = _parser().parse(text)
    blocks: list[Block] = []
    covered = 0  # lines before this one belong to a block already (or are blank)

    def gap(until: int) -> None:
        """Lines no block claimed (reference definitions): kept, as a paragraph."""
        leftover = _lines(lines, covered, until).strip("\n")
        if leftover.strip():
            blocks.append(Block("paragraph", leftover))

    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = _OPENERS.get(token.type) or _SINGLE.get(token.type)
        if token.level != 0 or kind is None or token.map is None:
            i += 1
            continue
        start, end = token.map
        gap(start)
        if token.type in _SINGLE:
            blocks.append(Block(kind, _lines(lines, start, end)))
            i += 1
        else:
            close = token.type.replace("_open", "_close")
            j, items = i + 1, []
            while j < len(tokens) and not (tokens[j].type == close and tokens[j].level == 0):
                item = tokens[j]
                if item.type == "list_item_open" and item.level == 1 and item.map:
                    items.append(_lines(lines, item.map[0], item.map[1]))
                j += 1
            if kind == "heading":
                content = tokens[i + 1].content if i + 1 < len(tokens) else ""
                blocks.append(Block(kind, _lines(lines, start, end), int(token.tag[1:]), content.strip()))
            else:
                blocks.append(Block(kind, _lines(lines, start, end), items=tuple(items)))
            i = j + 1
        covered = max(covered, end)
    gap(len(lines))
    return blocks


def fence_parts(block: Block) -> tuple[str, list[str], str]:
    """(opening fence line, code lines, closing fence line) of a fenced code block; a block the
    document never closed gets the closing fence it should have had."""
    lines = block.text.split("\n")
    opening = lines[0]
    indent = len(opening) - len(opening.lstrip(" "))
    marker = opening.lstrip(" ")
    fence = marker[: len(marker) - len(marker.lstrip(marker[0]))]
    body = lines[1:]
    if body and body[-1].strip().startswith(fence) and not body[-1].strip().strip(fence[0]):
        return opening, body[:-1], body[-1]
    return opening, body, " " * indent + fence
