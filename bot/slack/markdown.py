"""Answer text (Markdown from documents and chat models) as Slack `markdown` and `table` blocks.

mrkdwn has no tables and its own syntax, so Markdown posted as mrkdwn shows raw pipes, `**` and
`#`. Slack's `markdown` block takes standard Markdown and renders it; its `table` block shows a
table (one per message). Here the text is parsed with markdown-it (CommonMark plus GFM tables),
cut at block boundaries into pieces the caller can fit into a size budget, and made harmless:

- outside code, `&`, `<` and `>` become entities (Slack's own escaping rule, which standard
  Markdown renders as the same characters), so `<!channel>`, `<@U1>` or `<https://x|bank>` in
  a document show as text; blockquote markers stay. `@here`, `@channel` and `@everyone` are
  put in code so no surface can read them as a broadcast;
- a link keeps its label only when the label does not itself look like an address (a label
  such as `https://bank.test` pointing elsewhere would be a forged link): such links, and links
  to anything but http(s), are shown with their real address. Link reference definitions
  (`[1]: https://…`) are shown as text, so they cannot turn the answer's `[1]` into a link;
- code spans and fences stay exactly as written (entities would show literally there), except
  that a `<` opening Slack's special syntax becomes `‹` (`text.defang`);
- everything is neutralised first (bidi overrides, zero-width characters).

How Slack's markdown block treats Slack's own `<!here>` syntax is not documented, so none of it
reaches the block in a form any reading would turn into a ping or a link.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.slack.text import defang, literal, neutralise, trim, web_url

Block = dict[str, Any]

CHUNK = 3000  # characters per markdown block: small enough to drop or shorten one at a time
MIN_SHORTENED = 200  # a shortened block shorter than this is left out instead
TABLE_ROWS = 100  # Slack's table block: at most 100 rows (the header is one) ...
TABLE_COLUMNS = 20  # ... of at most 20 cells
CELL_LIMIT = 500  # characters per cell (undocumented; long cells make unreadable tables anyway)
WRAP_AFTER = 40  # columns with longer cells wrap instead of scrolling sideways

_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# the structure (paragraphs, code, tables) is all the splitting needs: inline parsing is left
# for table cells, which are the only places whose inline content is read
_BLOCKS = MarkdownIt("commonmark").enable(["table"]).disable(["inline", "text_join"])
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_QUOTE_PREFIX = re.compile(r"[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?(?:>[ \t]?)+")
_LINK = re.compile(r"(!?)\[((?:[^\[\]\\\n]|\\.){0,500})\]\(\s*<?([^\s<>()]*(?:\([^\s<>()]*\)[^\s<>()]*)*)>?"
                   r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^\s<>]+)>", re.IGNORECASE)
_BROADCAST = re.compile(r"@(?:here|channel|everyone)\b", re.IGNORECASE)
_URLISH = re.compile(r"(?i)[a-z][a-z0-9+.-]*://|www\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")
_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})")
# a fence inside a list item or a quote (top-level fences are code units of their own)
_NESTED_FENCE = re.compile(r"^(?:[ \t]*>)*[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?(`{3,}|~{3,})")
_REFERENCE = re.compile(r"[ \t]{0,3}\[[^\]\n]+\]:")  # `[1]: https://…` would turn "[1]" into a link


def _code_span_end(src: str, start: int, ticks: int) -> int:
    """Where the code span opened by `ticks` backticks at `start` ends, or -1 (CommonMark:
    closed by the next run of exactly as many backticks)."""
    for match in re.finditer(r"`+", src[start + ticks:]):
        if len(match.group()) == ticks:
            return start + ticks + match.end()
    return -1


def _link(match: re.Match[str]) -> str:
    bang, label, url = match.groups()
    label = label or url
    target = web_url(url)
    shown = _inline(label, links=False)
    if target is None:  # relative paths, javascript:, mailto: ... the label alone
        return shown
    target = target.replace("(", "%28").replace(")", "%29").replace("&", "&amp;")
    if bang or (_URLISH.search(label) and label.strip() != url.strip()):
        return f"{shown} ({target})"  # the address is shown, so nothing pretends to be another
    return f"[{shown}]({target})"


def _inline(src: str, *, links: bool = True) -> str:
    """One paragraph-level piece of Markdown (not a code block) made harmless, formatting kept."""
    out: list[str] = []
    i, n = 0, len(src)
    line_start = True  # at the start of a line, or just after its quote markers
    while i < n:
        if line_start:
            line_start = False
            prefix = _QUOTE_PREFIX.match(src, i)
            if prefix:
                out.append(prefix.group())
                i = prefix.end()
                line_start = True
                continue
            if _REFERENCE.match(src, i):
                out.append("\\")  # a link reference definition shown as text, defining nothing
        ch = src[i]
        if ch == "\n":
            line_start = True
        if ch == "`":
            ticks = len(src[i:]) - len(src[i:].lstrip("`"))
            end = _code_span_end(src, i, ticks)
            if end == -1:
                out.append("`" * ticks)
                i += ticks
            else:
                out.append(defang(src[i:end]))
                i = end
            continue
        if links and ch in "![":
            match = _LINK.match(src, i)
            if match:
                out.append(_link(match))
                i = match.end()
                continue
        if ch == "<":
            match = _AUTOLINK.match(src, i)
            target = web_url(match.group(1)) if match else None
            if match and target:
                out.append(target.replace("&", "&amp;"))
                i = match.end()
                continue
        if ch == "@" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] in "@`")):
            match = _BROADCAST.match(src, i)
            if match:
                out.append(f"`{match.group()}`")
                i = match.end()
                continue
        if ch == "\\" and i + 1 < n and src[i + 1] in _ENTITIES:
            i += 1  # `\<` in the source: the entity below already shows the character
            continue
        out.append(_ENTITIES.get(ch, ch))
        i += 1
    return "".join(out)


def _text(lines: list[str]) -> str:
    """A text unit made harmless: prose through `_inline`, code fenced inside lists and quotes
    kept as written (only defanged), like top-level code."""
    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in lines:
        match = _NESTED_FENCE.match(line)
        if fence is None and match is None:
            prose.append(line)
            continue
        if prose:
            out.append(_inline("\n".join(prose)))
            prose = []
        out.append(defang(line))
        if fence is None and match:
            fence = match.group(1)
        elif match and match.group(1).startswith(fence or "") and not line[match.end():].strip():
            fence = None
    if prose:
        out.append(_inline("\n".join(prose)))
    return "\n".join(out)


# -- splitting into pieces --------------------------------------------------------------------


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    aligns: list[str]
    source: list[str]  # the Markdown lines, for a table shown as code


@dataclass
class Unit:
    """A top-level piece of the source: text, a code block or a table."""

    kind: str
    lines: list[str]
    table: Table | None = None


def _cell_text(inline: Token) -> str:
    parts: list[str] = []
    children = _PARSER.parseInline(inline.content)[0].children if inline.content else []
    for child in children or []:
        if child.type in {"text", "code_inline", "html_inline"}:
            parts.append(child.content)
        elif child.type == "image":
            parts.append(child.content or str(child.attrs.get("src", "")))
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append(" ")
    text = re.sub(r"\s+", " ", literal("".join(parts))).strip()
    return trim(text, CELL_LIMIT, entities=False)


def _table(tokens: list[Token], start: int, lines: list[str]) -> tuple[Table, int]:
    """The table opened at `tokens[start]`, and the index of its `table_close`."""
    header: list[str] = []
    rows: list[list[str]] = []
    aligns: list[str] = []
    row: list[str] = []
    i = start
    while tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "tr_open":
            row = []
        elif token.type == "th_open":
            aligns.append(str(token.attrs.get("style", "")).removeprefix("text-align:") or "left")
        elif token.type == "inline":
            row.append(_cell_text(token))
        elif token.type == "tr_close":
            if header:
                rows.append(row)
            else:
                header = row
        i += 1
    begin, end = tokens[start].map or (0, 0)
    return Table(header, rows, aligns, lines[begin:end]), i


def units(text: str) -> list[Unit]:
    """The top-level blocks of the Markdown source, in order (blank lines between them dropped)."""
    lines = text.split("\n")
    tokens = _BLOCKS.parse(text)
    found: list[Unit] = []
    covered = 0

    def gap(until: int) -> None:
        rest = lines[covered:until]
        if any(line.strip() for line in rest):  # e.g. link reference definitions
            found.append(Unit("text", rest))

    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.level == 0 and token.nesting != -1 and token.map:
            begin, end = token.map
            gap(begin)
            if token.type == "table_open":
                table, i = _table(tokens, i, lines)
                found.append(Unit("table", lines[begin:end], table))
            else:
                kind = "code" if token.type in {"fence", "code_block"} else "text"
                found.append(Unit(kind, lines[begin:end]))
            covered = max(covered, end)
        i += 1
    gap(len(lines))
    return found


def _split(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters: at line ends, else at spaces."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            amp = line.rfind("&", 0, cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp or cut  # never half an entity
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:cut])
            line = line[cut:].lstrip(" ")
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit and current:
            pieces.append(current)
            candidate = line
        current = candidate
    if current:
        pieces.append(current)
    return pieces


def _code(lines: list[str], limit: int) -> list[str]:
    """A code block as pieces of at most `limit` characters, each a complete fence."""
    opener = _FENCE.match(lines[0]) if lines else None
    if not opener:  # indented code: every line keeps its indentation, so any cut is valid
        return _split(defang("\n".join(lines)), limit)
    fence = opener.group(1) + opener.group(2)
    body = lines[1:]
    if body and body[-1].strip().startswith(opener.group(2)):
        body = body[:-1]
    room = max(limit - len(lines[0]) - len(fence) - 2, 100)
    return [f"{defang(lines[0])}\n{piece}\n{fence}"
            for piece in _split(defang("\n".join(body)), room)] or [f"{lines[0]}\n{fence}"]


def _as_code(table: Table) -> list[str]:
    return ["```"] + table.source + ["```"]


@dataclass
class Piece:
    """One block of the answer; `fit(room)` gives it within `room` bytes (None: it cannot fit),
    and whether it had to be shortened."""

    fit: Callable[[int, Callable[[Block], int]], tuple[Block | None, bool]]


def _markdown_piece(text: str) -> Piece:
    def fit(room: int, size: Callable[[Block], int]) -> tuple[Block | None, bool]:
        block: Block = {"type": "markdown", "text": text}
        if size(block) <= room:
            return block, False
        overhead = size({"type": "markdown", "text": ""})
        keep = room - overhead
        for _ in range(6):  # characters are bytes or more in JSON: shrink until it fits
            if keep < MIN_SHORTENED:
                return None, True
            block = {"type": "markdown", "text": _close_fence(trim(text, keep))}
            used = size(block)
            if used <= room:
                return block, True
            keep = int(keep * (room - overhead) / (used - overhead)) - 8
        return None, True

    return Piece(fit)


def _close_fence(text: str) -> str:
    """A shortened piece that cut a fence open gets it closed again."""
    open_fence = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match:
            open_fence = None if open_fence else match.group(2)
    return f"{text}\n{open_fence}" if open_fence else text


def _table_piece(table: Table) -> Piece:
    columns = min(len(table.header), TABLE_COLUMNS)
    width = [max([len(table.header[c])] + [len(r[c]) for r in table.rows if c < len(r)])
             for c in range(columns)]

    def cell(text: str, bold: bool = False) -> Block:
        if not bold:
            return {"type": "raw_text", "text": text or " "}
        return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": text or " ", "style": {"bold": True}}]}]}

    def build(count: int) -> Block:
        rows = [[cell(h, bold=True) for h in table.header[:columns]]]
        for row in table.rows[:count]:
            padded = (row + [""] * columns)[:columns]
            rows.append([cell(text) for text in padded])
        block: Block = {"type": "table", "rows": rows}
        settings = [{"align": a if a in {"left", "center", "right"} else "left",
                     **({"is_wrapped": True} if width[c] > WRAP_AFTER else {})}
                    for c, a in enumerate(table.aligns[:columns])]
        if any(s != {"align": "left"} for s in settings):
            block["column_settings"] = settings
        return block

    def fit(room: int, size: Callable[[Block], int]) -> tuple[Block | None, bool]:
        most = min(len(table.rows), TABLE_ROWS - 1)  # rows beyond Slack's limit: noted after it
        if size(build(most)) <= room:
            return build(most), False
        low, high = 0, most  # the most rows that fit, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if size(build(middle)) <= room else (low, middle - 1)
        return (build(low), True) if low > 0 else (None, True)

    return Piece(fit)


def pieces(text: str) -> list[Piece]:
    """The answer text as blocks to post, in order: markdown blocks of at most CHUNK characters
    cut at block boundaries (a code block cut in two is closed and reopened), and the first
    table as a `table` block (Slack takes one per message; later ones are shown as code)."""
    found: list[Piece] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            found.append(_markdown_piece("\n\n".join(current)))
            current.clear()

    def add(rendered: list[str]) -> None:
        for part in rendered:
            if current and len("\n\n".join(current + [part])) > CHUNK:
                flush()
            current.append(part)

    table_shown = False
    for unit in units(neutralise(text)):
        if unit.kind == "table" and unit.table is not None and not table_shown \
                and unit.table.header:
            flush()
            found.append(_table_piece(unit.table))
            table_shown = True
            hidden = [f"{len(unit.table.header) - TABLE_COLUMNS} more column(s)"] \
                if len(unit.table.header) > TABLE_COLUMNS else []
            if len(unit.table.rows) > TABLE_ROWS - 1:
                hidden.append(f"{len(unit.table.rows) - (TABLE_ROWS - 1)} more row(s)")
            if hidden:
                add([f"_{' and '.join(hidden)} of the table not shown._"])
        elif unit.kind == "table" and unit.table is not None:
            add(_code(_as_code(unit.table), CHUNK))
        elif unit.kind == "code":
            add(_code(unit.lines, CHUNK))
        else:
            add(_split(_text(unit.lines), CHUNK))
    flush()
    return found
