"""Turn files into `SourceDocument`s: Markdown, plain text, HTML, PDF and BEIR `corpus.jsonl`.

Each loader raises `LoadError` with a reason a person can act on; the ingest pipeline reports
it by file name and goes on with the rest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from retrieval.types import SourceDocument

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown"}
TEXT_SUFFIXES = {".txt", ".text", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
JSONL_SUFFIXES = {".jsonl"}
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | JSONL_SUFFIXES
MAX_FILE_BYTES = 50 * 1024 * 1024


class LoadError(Exception):
    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


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


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[LoadError]]:
    """Expand folders into the supported files below them, sorted for a stable order.

    A path named explicitly that is missing or of an unsupported kind is an error; unsupported
    files met while walking a folder are simply not knowledge-base material (images, lock files).
    """
    files: list[Path] = []
    errors: list[LoadError] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            errors.append(LoadError(path, "no such file or folder"))
            continue
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not candidates:
                errors.append(LoadError(path, "no Markdown, text, HTML, PDF or .jsonl files in this folder"))
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            candidates = [path]
        else:
            errors.append(LoadError(path, f"unsupported file type {path.suffix or '(none)'!r}"))
            continue
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                files.append(resolved)
    return files, errors


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LoadError(path, f"file is too large ({size // (1024 * 1024)} MiB)")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror or exc}") from exc
    if b"\x00" in data[:8192]:
        raise LoadError(path, "binary file, not text")
    return data


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(path, f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    return text


def _title_from_markdown(text: str, fallback: str) -> str:
    match = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else fallback


def _fallback_title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


def load_markdown(path: Path) -> SourceDocument:
    text = _read_text(path)
    title = _title_from_markdown(text, _fallback_title(path))
    return SourceDocument(str(path), title, str(path), text, "markdown", fingerprint(title, text))


def load_text(path: Path) -> SourceDocument:
    text = _read_text(path)
    title = _fallback_title(path)
    return SourceDocument(str(path), title, str(path), text, "text", fingerprint(title, text))


def html_to_markdown(html: str) -> tuple[str, str]:
    """Readable text of an HTML page with h1-h3 kept as Markdown headings (for section splits)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for level in (1, 2, 3):
        for heading in soup.find_all(f"h{level}"):
            text = heading.get_text(" ", strip=True)
            heading.replace_with(f"\n\n{'#' * level} {text}\n\n")
    for block in soup.find_all(["p", "li", "tr", "br", "div", "pre", "blockquote"]):
        block.insert_after("\n")
    body = soup.body or soup
    text = re.sub(r"\n{3,}", "\n\n", body.get_text())
    text = "\n".join(line.strip() for line in text.splitlines())
    return title, text.strip()


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
    title = title or _title_from_markdown(text, _fallback_title(path))
    return SourceDocument(str(path), title, str(path), text, "markdown", fingerprint(title, text))


def load_pdf(path: Path) -> SourceDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, OSError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(path, f"malformed PDF ({exc.__class__.__name__})") from exc
    except Exception as exc:  # pypdf raises assorted errors on damaged files
        raise LoadError(path, f"malformed PDF ({exc.__class__.__name__})") from exc
    text = "\n\n".join(f"\f[page {i}]\n{page.strip()}" for i, page in enumerate(pages, 1) if page.strip())
    if not text.strip():
        raise LoadError(path, "PDF has no extractable text (scanned images?)")
    title = str(meta_title).strip() or _fallback_title(path)
    return SourceDocument(str(path), title, str(path), text, "pdf", fingerprint(title, text))


def load_jsonl(path: Path) -> LoadResult:
    """A BEIR corpus: one `{"_id", "title", "text"}` object per line; `_id` is the document id."""
    text = _read_text(path)
    if not text.strip():
        return LoadResult(path, [], [LoadError(path, "file is empty")])
    documents: list[SourceDocument] = []
    problems: list[LoadError] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
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
        if not isinstance(doc_id, (str, int)) or str(doc_id).strip() == "":
            problems.append(LoadError(where, "missing \"_id\""))
            continue
        if not isinstance(body, str) or not body.strip():
            problems.append(LoadError(where, "missing or empty \"text\""))
            continue
        doc_id = str(doc_id)
        if doc_id in seen:
            problems.append(LoadError(where, f"duplicate _id {doc_id!r}"))
            continue
        seen.add(doc_id)
        title = str(record.get("title") or "").strip() or doc_id
        source = str(record.get("url") or record.get("source") or f"{path}#{doc_id}")
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
