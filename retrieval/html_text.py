"""HTML pages as Markdown text, in one pass over the page and without a document tree.

Building a tree and then editing it (as a BeautifulSoup conversion does) costs a scan of an
element's siblings for every insertion: 40,000 paragraphs took 2.5 times as long as the same
text, 100,000 nested divs minutes. Here the standard library's streaming `HTMLParser` reports
each tag once and the converter keeps only counters and the open lists and table, so time grows
with the page's length and not with how deeply it nests (`benchmarks/html_bench.py`).

What survives is what the chunker and the answer text use: `<h1>`–`<h6>` as Markdown headings
(h1–h3 start sections), paragraphs separated by blank lines, lists as Markdown lists, `<pre>` as
a fenced code block with its indentation, tables as Markdown tables. Scripts, styles,
navigation, footers and other non-content elements are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "math", "nav", "footer", "iframe", "object"})
BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "header", "aside", "blockquote", "figure",
    "figcaption", "form", "fieldset", "address", "dl", "dt", "dd", "details", "summary", "hr",
    "center", "body", "html",
})
HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Deeper lists are still read, but indented no further: a page with 500 unclosed <ul> must not
# turn into lines of spaces.
MAX_LIST_INDENT = 8
_BACKTICKS = re.compile(r"`{3,}")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._newlines = 2  # newlines at the end of `out`; the start counts as a block boundary
        self.title: list[str] | None = None
        self._in_title = False
        self._skip = 0
        self._inline: list[str] = []
        self._heading = 0
        self._prefix = ""  # for the next line flushed: a list marker, then its continuation indent
        self._lists: list[tuple[str, int]] = []  # (indent of the items, next number or 0 for bullets)
        self._pre = 0
        self._code: list[str] = []
        self._tables = 0  # nesting depth; only the outermost table keeps its rows and cells
        self._rows: list[list[str]] = []
        self._cell: list[str] | None = None

    # -- output ----------------------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        self.out.append(text)
        self._newlines = 0

    def _flush(self) -> None:
        """The inline text collected so far, as one line (whitespace collapsed, as a browser shows it)."""
        text = " ".join("".join(self._inline).split())
        self._inline.clear()
        if not text:
            return
        if self._heading:
            text = f"{'#' * self._heading} {text}"
        elif self._lists:
            indent = self._lists[-1][0]
            text = (self._prefix or indent + "  ") + text
            self._prefix = ""
        self._emit(text)

    def _boundary(self, newlines: int) -> None:
        if self._cell is not None:  # blocks inside a table cell are words of that cell
            self._cell.append(" ")
            return
        self._flush()
        if self._lists:
            newlines = 1
        if self._newlines < newlines:
            self.out.append("\n" * (newlines - self._newlines))
            self._newlines = newlines

    # -- tables ----------------------------------------------------------------------------------
    def _end_cell(self) -> None:
        if self._cell is not None:
            text = " ".join("".join(self._cell).split()).replace("|", "\\|")
            if not self._rows:
                self._rows.append([])
            self._rows[-1].append(text)
            self._cell = None

    def _end_table(self) -> None:
        self._end_cell()
        rows = [row for row in self._rows if any(row)]
        self._rows = []
        if not rows:
            return
        width = max(len(row) for row in rows)
        lines = [f"| {' | '.join(row + [''] * (width - len(row)))} |" for row in rows]
        lines.insert(1, "|" + " --- |" * width)
        self._boundary(2)
        self._emit("\n".join(lines))
        self._boundary(2)

    # -- parser events ---------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "title" and self.title is None:
            self._in_title, self.title = True, []
        elif self._pre:
            return  # markup inside <pre> (<code>, <span>) adds nothing but its text
        elif tag == "pre":
            self._boundary(2)
            self._pre = 1
        elif tag == "table":
            self._tables += 1
            if self._tables == 1:
                self._boundary(2)
                self._rows, self._cell = [], None
            elif self._cell is not None:
                self._cell.append(" ")
        elif self._tables:
            if self._tables > 1:
                if self._cell is not None:
                    self._cell.append(" ")
            elif tag == "tr":
                self._end_cell()
                self._rows.append([])
            elif tag in ("td", "th"):
                self._end_cell()
                self._cell = []
            elif tag in BLOCKS or tag in ("br", "li"):
                self._boundary(1)
        elif tag in HEADINGS:
            self._boundary(2)
            self._heading = HEADINGS[tag]
        elif tag in ("ul", "ol"):
            self._boundary(2)
            parent = self._lists[-1] if self._lists else None
            if parent is None:
                indent = ""
            elif len(self._lists) >= MAX_LIST_INDENT:
                indent = parent[0]
            else:
                indent = parent[0] + " " * (3 if parent[1] else 2)
            self._lists.append((indent, 1 if tag == "ol" else 0))
        elif tag == "li":
            self._boundary(1)
            if self._lists:
                indent, number = self._lists[-1]
                self._prefix = f"{indent}{number}. " if number else f"{indent}- "
                if number:
                    self._lists[-1] = (indent, number + 1)
        elif tag == "br":
            self._boundary(1)
        elif tag in BLOCKS:
            self._boundary(2)

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag == "title" and self._in_title:
            self._in_title = False
        elif self._pre:
            if tag == "pre":
                self._end_pre()
        elif tag == "table" and self._tables:
            self._tables -= 1
            if self._tables == 0:
                self._end_table()
        elif self._tables:
            if self._tables == 1 and tag in ("td", "th"):
                self._end_cell()
        elif tag in HEADINGS and self._heading:
            self._flush()
            self._heading = 0
            self._boundary(2)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._flush()
                self._lists.pop()
                self._prefix = ""
            self._boundary(2)
        elif tag in BLOCKS or tag == "li":
            self._boundary(2)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title and self.title is not None:
            self.title.append(data)
        elif self._pre:
            self._code.append(data)
        elif self._tables:
            if self._cell is None:  # text between cells: a browser shows it before the table
                self._inline.append(data)
            else:
                self._cell.append(data)
        else:
            self._inline.append(data)

    def _end_pre(self) -> None:
        code = "".join(self._code)
        self._code.clear()
        self._pre = 0
        code = code[1:] if code.startswith("\n") else code  # as browsers drop it
        code = code.rstrip("\n")
        longest = max((len(run) for run in _BACKTICKS.findall(code)), default=2)
        fence = "`" * max(3, longest + 1)
        self._boundary(2)
        self._emit(f"{fence}\n{code}\n{fence}")
        self._boundary(2)

    def finish(self) -> str:
        self.close()
        if self._pre:
            self._end_pre()
        if self._tables:
            self._tables = 0
            self._end_table()
        self._flush()
        return "".join(self.out).strip("\n")


def html_to_markdown(html: str) -> tuple[str, str]:
    """(title, Markdown text) of an HTML page: the `<title>`, and the readable content with its
    headings, lists, code and tables as Markdown."""
    converter = _Converter()
    converter.feed(html)
    text = converter.finish()
    title = " ".join("".join(converter.title or []).split())
    return title, text
