"""Turn files into `SourceDocument`s: Markdown, plain text, HTML, PDF and BEIR `corpus.jsonl`.

Each loader raises `LoadError` with a reason a person can act on; the ingest pipeline reports
it by file name and goes on with the rest. Only regular files are read (a FIFO would block the
read forever, a device never ends), and every text, title and corpus id or URL is cleaned of
control characters on the way in (`retrieval.cleaning`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from retrieval.cleaning import clean_line, clean_text, has_surrogates
from retrieval.html_text import html_to_markdown
from retrieval.markdown_blocks import parse as parse_markdown
from retrieval.types import SourceDocument

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown"}
TEXT_SUFFIXES = {".txt", ".text", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
JSONL_SUFFIXES = {".jsonl"}
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | JSONL_SUFFIXES
MAX_FILE_BYTES = 50 * 1024 * 1024

log = logging.getLogger(__name__)


class LoadError(Exception):
    """`unusable_path`: a path given to ingest that is missing, of a kind askloop does not read,
    or not a regular file: nothing of it could even be tried (the command then fails). Problems
    met while reading files (bad bytes, a malformed PDF, a bad corpus line) are not."""

    def __init__(self, path: Path | str, reason: str, unusable_path: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.unusable_path = unusable_path


@dataclass(frozen=True)
class LoadResult:
    """What one file yielded: documents, plus problems that did not stop the rest of the file."""

    path: Path
    documents: list[SourceDocument]
    problems: list[LoadError]


def fingerprint(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"not a regular file ({kind})"


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[LoadError]]:
    """Expand folders into the supported files below them, sorted for a stable order.

    A path named explicitly that is missing, of an unsupported kind or not a regular file (a
    FIFO, a socket, a device) is an error; such files met while walking a folder are simply not
    knowledge-base material (images, lock files, sockets) and are passed over.
    """
    files: list[Path] = []
    errors: list[LoadError] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            missing = isinstance(exc, FileNotFoundError)
            reason = "no such file or folder" if missing else f"cannot read: {exc.strerror or exc}"
            errors.append(LoadError(path, reason, unusable_path=True))
            continue
        if stat.S_ISDIR(mode):
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not candidates:
                errors.append(LoadError(
                    path, "no Markdown, text, HTML, PDF or .jsonl files in this folder", unusable_path=True
                ))
        elif (why := _not_regular(mode)) is not None:
            errors.append(LoadError(path, why, unusable_path=True))
            continue
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            candidates = [path]
        else:
            errors.append(LoadError(path, f"unsupported file type {path.suffix or '(none)'!r}", unusable_path=True))
            continue
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if has_surrogates(str(resolved)):
                # a file's path is its document id, and such an id cannot be stored anywhere
                errors.append(LoadError(
                    resolved, "the file name is not valid UTF-8: rename the file",
                    unusable_path=candidate == path,
                ))
                continue
            files.append(resolved)
    return files, errors


def read_file(path: Path) -> bytes:
    """The bytes of a regular file, at most `MAX_FILE_BYTES`.

    Opened without blocking and checked on the open descriptor, so a FIFO or a device put in
    place of a file after `discover` looked at it is refused instead of read forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise LoadError(path, "cannot read: Is a directory")
        why = _not_regular(info.st_mode)
        if why is not None:
            raise LoadError(path, why)
        if info.st_size > MAX_FILE_BYTES:
            raise LoadError(path, f"file is too large ({info.st_size // (1024 * 1024)} MiB)")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:  # it grew while we read it
        raise LoadError(path, f"file is too large (over {MAX_FILE_BYTES // (1024 * 1024)} MiB)")
    return data


def _read_bytes(path: Path) -> bytes:
    data = read_file(path)
    if b"\x00" in data[:8192]:
        raise LoadError(path, "binary file, not text")
    return data


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(path, f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    return clean_text(text)


# The first heading is nearly always near the top: the title is looked for there first, so a
# long document is not parsed twice.
_TITLE_WINDOW = 64 * 1024


def _title_from_markdown(text: str, fallback: str) -> str:
    """The first heading (of any level; not a `#` line inside a code block), else `fallback`."""
    for window in (text[:_TITLE_WINDOW], text) if len(text) > _TITLE_WINDOW else (text,):
        for block in parse_markdown(window):
            if block.kind == "heading" and clean_line(block.heading):
                return clean_line(block.heading)
    return fallback


def _fallback_title(path: Path) -> str:
    return clean_line(path.stem.replace("_", " ").replace("-", " ")) or clean_line(path.name)


def load_markdown(path: Path) -> SourceDocument:
    text = _read_text(path)
    title = _title_from_markdown(text, _fallback_title(path))
    return SourceDocument(str(path), title, str(path), text, "markdown", fingerprint(title, text))


def load_text(path: Path) -> SourceDocument:
    text = _read_text(path)
    title = _fallback_title(path)
    return SourceDocument(str(path), title, str(path), text, "text", fingerprint(title, text))


def _decode_html(path: Path) -> str:
    """UTF-8, else the charset the page declares (`<meta charset>`), else the likeliest one:
    pages saved from older intranets are often windows-1252 or latin-1."""
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from bs4 import UnicodeDammit

        decoded = UnicodeDammit(data, is_html=True)
        if decoded.unicode_markup is None:
            raise LoadError(path, "cannot tell which text encoding this HTML file uses") from None
        return decoded.unicode_markup


def load_html(path: Path) -> SourceDocument:
    raw = _decode_html(path)
    title, text = html_to_markdown(raw)
    title, text = clean_line(title), clean_text(text)
    title = title or _title_from_markdown(text, _fallback_title(path))
    return SourceDocument(str(path), title, str(path), text, "markdown", fingerprint(title, text))


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _quiet_pypdf(path: Path) -> Iterator[None]:
    """pypdf's log lines and warnings about `path`, kept off the terminal and logged at debug."""
    pypdf_log = logging.getLogger("pypdf")
    collected = _Collected()
    propagate = pypdf_log.propagate
    caught: list[warnings.WarningMessage] = []
    pypdf_log.addHandler(collected)
    pypdf_log.propagate = False
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            caught = recorded
            yield
    finally:
        pypdf_log.removeHandler(collected)
        pypdf_log.propagate = propagate
        for message in collected.messages + [str(w.message) for w in caught]:
            log.debug("%s: pypdf: %s", path, message)


def load_pdf(path: Path) -> SourceDocument:
    """Text per page. pypdf reports what it repairs in damaged files through its logger and
    `warnings` ("Ignoring wrong pointing object ..."); those lines are kept out of the terminal
    (logged at debug level here) so a person sees askloop's one line about the file, or nothing."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    data = read_file(path)
    with _quiet_pypdf(path):
        try:
            reader = PdfReader(io.BytesIO(data))
            pages = [page.extract_text() or "" for page in reader.pages]
            meta_title = (reader.metadata.title if reader.metadata else None) or ""
        except (PdfReadError, OSError, ValueError, KeyError, TypeError) as exc:
            raise LoadError(path, f"malformed PDF ({exc.__class__.__name__})") from exc
        except Exception as exc:  # pypdf raises assorted errors on damaged files
            raise LoadError(path, f"malformed PDF ({exc.__class__.__name__})") from exc
    pages = [clean_text(page).strip() for page in pages]
    text = "\n\n".join(f"\f[page {i}]\n{page}" for i, page in enumerate(pages, 1) if page)
    if not text.strip():
        raise LoadError(path, "PDF has no extractable text (scanned images?)")
    title = clean_line(str(meta_title)) or _fallback_title(path)
    return SourceDocument(str(path), title, str(path), text, "pdf", fingerprint(title, text))


def load_jsonl(path: Path) -> LoadResult:
    """A BEIR corpus: one `{"_id", "title", "text"}` object per line; `_id` is the document id."""
    text = _read_text(path)
    if not text.strip():
        return LoadResult(path, [], [LoadError(path, "file is empty")])
    documents: list[SourceDocument] = []
    problems: list[LoadError] = []
    seen: set[str] = set()
    # split on line feeds only: str.splitlines() also breaks at U+2028 and other separators,
    # which JSON allows unescaped inside strings
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(LoadError(where, f"invalid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append(LoadError(where, "expected a JSON object"))
            continue
        doc_id = record.get("_id")
        body = record.get("text")
        # JSON escapes can carry any code point: `\u0000`, escape sequences, lone surrogates
        doc_id = clean_line(str(doc_id)) if isinstance(doc_id, (str, int)) else ""
        body = clean_text(body) if isinstance(body, str) else ""
        if not doc_id:
            problems.append(LoadError(where, "missing \"_id\""))
            continue
        if not body.strip():
            problems.append(LoadError(where, "missing or empty \"text\""))
            continue
        if doc_id in seen:
            problems.append(LoadError(where, f"duplicate _id {doc_id!r}"))
            continue
        seen.add(doc_id)
        title = clean_line(str(record.get("title") or "")) or doc_id
        source = clean_line(str(record.get("url") or record.get("source") or "")) or f"{path}#{doc_id}"
        documents.append(
            SourceDocument(doc_id, title, source, body, "text", fingerprint(title, body, source))
        )
    return LoadResult(path, documents, problems)


def load_file(path: Path) -> LoadResult:
    """Documents of one file, each remembering the file as its `origin`."""
    suffix = path.suffix.lower()
    try:
        if suffix in JSONL_SUFFIXES:
            result = load_jsonl(path)
            documents = [replace(d, origin=str(path)) for d in result.documents]
            return LoadResult(path, documents, result.problems)
        if suffix in MARKDOWN_SUFFIXES:
            document = load_markdown(path)
        elif suffix in HTML_SUFFIXES:
            document = load_html(path)
        elif suffix in PDF_SUFFIXES:
            document = load_pdf(path)
        elif suffix in TEXT_SUFFIXES:
            document = load_text(path)
        else:
            raise LoadError(path, f"unsupported file type {suffix!r}")
    except LoadError as exc:
        return LoadResult(path, [], [exc])
    if not document.text.strip():
        return LoadResult(path, [], [LoadError(path, "file is empty")])
    return LoadResult(path, [replace(document, origin=str(path))], [])


def load_all(paths: Iterable[Path]) -> Iterator[LoadResult]:
    files, errors = discover(paths)
    for error in errors:
        yield LoadResult(Path(error.path), [], [error])
    for file in files:
        yield load_file(file)
