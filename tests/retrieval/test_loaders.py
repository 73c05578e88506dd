"""Loading every supported file kind and chunking it: no model, no store, milliseconds each."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import threading
from pathlib import Path

import pytest

from retrieval.chunking import Chunker, chunk_id
from retrieval.loaders import discover, html_to_markdown, load_all, load_file
from retrieval.types import SourceDocument
from tests.support.retrieval import write_corpus, write_pdf

MARKDOWN = """Some words before any heading.

# Onboarding guide

Welcome to the team.

## Accounts

Ask IT for a laptop on your first day.

### SSH keys

Upload your public key to the git server.

```
# not a heading inside code
```

## Payroll

Salaries are paid on the last working day of the month.
"""


def test_markdown_splits_on_headings_and_names_sections(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    result = load_file(path)
    assert result.problems == []
    [document] = result.documents
    assert document.title == "Onboarding guide"
    assert document.doc_id == str(path.resolve()) or document.doc_id == str(path)
    chunks = Chunker(200, 20).split(document)
    by_section = {c.section: c.text for c in chunks}
    assert by_section["Onboarding guide › Accounts"].startswith("Ask IT for a laptop")
    assert "Upload your public key" in by_section["Onboarding guide › Accounts › SSH keys"]
    assert "# not a heading" in by_section["Onboarding guide › Accounts › SSH keys"]
    assert by_section["Onboarding guide › Payroll"].startswith("Salaries are paid")
    assert by_section[""] == "Some words before any heading."
    # no chunk straddles two sections
    assert not any("Salaries" in c.text and "laptop" in c.text for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.title == "Onboarding guide" and c.source == document.source for c in chunks)


def test_long_section_is_split_within_the_size_limit(tmp_path: Path) -> None:
    sentences = " ".join(f"Sentence number {i} explains one more detail." for i in range(200))
    path = tmp_path / "long.md"
    path.write_text(f"# Long\n\n## Details\n\n{sentences}\n", encoding="utf-8")
    [document] = load_file(path).documents
    chunks = Chunker(500, 50).split(document)
    assert len(chunks) > 10
    assert all(len(c.text) <= 500 for c in chunks)
    assert {c.section for c in chunks} == {"Long › Details"}
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_plain_text_title_from_file_name(tmp_path: Path) -> None:
    path = tmp_path / "release_process-notes.txt"
    path.write_text("Releases happen every second Tuesday.\n", encoding="utf-8")
    [document] = load_file(path).documents
    assert document.title == "release process notes"
    assert document.kind == "text"
    [chunk] = Chunker().split(document)
    assert chunk.text == "Releases happen every second Tuesday."
    assert chunk.section == ""


def test_html_title_headings_and_no_scripts(tmp_path: Path) -> None:
    path = tmp_path / "travel.html"
    path.write_text(
        "<html><head><title>Travel policy</title><script>var secret = 1;</script></head>"
        "<body><nav>Home | About</nav><h1>Travel</h1><p>Book &amp; fly economy.</p>"
        "<h2>Hotels</h2><p>Up to 150 euros a night.</p></body></html>",
        encoding="utf-8",
    )
    [document] = load_file(path).documents
    assert document.title == "Travel policy"
    assert "secret" not in document.text and "Home | About" not in document.text
    sections = {c.section: c.text for c in Chunker().split(document)}
    assert sections == {"Travel": "Book & fly economy.", "Travel › Hotels": "Up to 150 euros a night."}


def test_pdf_text_pages_and_title(tmp_path: Path) -> None:
    path = write_pdf(
        tmp_path / "backups.pdf",
        [["Backups run nightly at 02:00.", "Restore with the backup tool."], ["Backups are kept for 30 days."]],
        title="Backup policy",
    )
    result = load_file(path)
    assert result.problems == []
    [document] = result.documents
    assert document.title == "Backup policy"
    chunks = Chunker().split(document)
    assert [(c.section, c.text.split("\n")[0]) for c in chunks] == [
        ("page 1", "Backups run nightly at 02:00."),
        ("page 2", "Backups are kept for 30 days."),
    ]


def test_pdf_without_title_uses_the_file_name(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "wifi-guide.pdf", [["The guest network password changes monthly."]])
    [document] = load_file(path).documents
    assert document.title == "wifi guide"


def test_beir_corpus_ids_titles_and_sources(tmp_path: Path) -> None:
    path = write_corpus(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "a1", "title": "First", "text": "Alpha text."},
            {"_id": 7, "title": "", "text": "Numeric id, no title."},
            {"_id": "u", "title": "Linked", "text": "Has a URL.", "url": "https://wiki.example/u"},
        ],
    )
    result = load_file(path)
    assert result.problems == []
    docs = {d.doc_id: d for d in result.documents}
    assert set(docs) == {"a1", "7", "u"}
    assert docs["a1"].title == "First" and docs["a1"].source == f"{path}#a1"
    assert docs["7"].title == "7"
    assert docs["u"].source == "https://wiki.example/u"


def test_beir_corpus_bad_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"_id": "ok", "title": "Fine", "text": "Good line."}\n'
        "{not json\n"
        '["a list"]\n'
        '{"title": "no id", "text": "x"}\n'
        '{"_id": "empty", "text": "   "}\n'
        '{"_id": "ok", "text": "duplicate"}\n'
        "\n",
        encoding="utf-8",
    )
    result = load_file(path)
    assert [d.doc_id for d in result.documents] == ["ok"]
    reasons = {p.path.rsplit(":", 1)[1]: p.reason for p in result.problems}
    assert reasons["2"].startswith("invalid JSON")
    assert reasons["3"] == "expected a JSON object"
    assert reasons["4"] == 'missing "_id"'
    assert reasons["5"] == 'missing or empty "text"'
    assert reasons["6"] == "duplicate _id 'ok'"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("binary.txt", b"\x00\x01\x02ELF\x00\x00", "binary file, not text"),
        ("latin1.md", "Caf\xe9 menu".encode("latin-1"), "not UTF-8 text (bad byte at offset 3)"),
        ("empty.md", b"   \n\n", "file is empty"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "malformed PDF"),
        ("empty.jsonl", b"\n \n", "file is empty"),
    ],
)
def test_bad_files_are_reported_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = load_file(path)
    assert result.documents == []
    [problem] = result.problems
    assert problem.path == str(path)
    assert problem.reason.startswith(reason)


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    import os

    not_a_file = tmp_path / "folder.md"
    not_a_file.mkdir()
    [problem] = load_file(not_a_file).problems
    assert problem.reason == "cannot read: Is a directory"
    if os.geteuid() == 0:
        return  # root reads files without read permission; the folder case above still ran
    path = tmp_path / "secret.md"
    path.write_text("# Secret", encoding="utf-8")
    path.chmod(0)
    try:
        [problem] = load_file(path).problems
        assert problem.reason == "cannot read: Permission denied"
    finally:
        path.chmod(0o644)


def test_discover_walks_folders_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / ".git").mkdir()
    for rel in ["docs/a.md", "docs/sub/b.txt", "docs/sub/c.html", "docs/.git/config.md", "docs/logo.png"]:
        (tmp_path / rel).write_text("x", encoding="utf-8")
    (tmp_path / "notes.docx").write_text("x", encoding="utf-8")
    files, errors = discover([tmp_path / "docs", tmp_path / "docs" / "a.md", tmp_path / "missing", tmp_path / "notes.docx"])
    assert [f.name for f in files] == ["a.md", "b.txt", "c.html"]  # a.md once, sorted
    assert [(Path(e.path).name, e.reason) for e in errors] == [
        ("missing", "no such file or folder"),
        ("notes.docx", "unsupported file type '.docx'"),
    ]
    assert len(list(load_all([tmp_path / "docs"]))) == 3
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "logo.png").write_bytes(b"\x89PNG")
    assert [e.reason for e in discover([tmp_path / "images"])[1]] == [
        "no Markdown, text, HTML, PDF or .jsonl files in this folder"
    ]


def test_chunk_ids_are_stable_and_distinct() -> None:
    assert chunk_id("doc", 0) == chunk_id("doc", 0)
    assert len({chunk_id("doc", 0), chunk_id("doc", 1), chunk_id("doc2", 0)}) == 3


def test_fingerprint_changes_with_text_and_chunk_settings(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one", encoding="utf-8")
    first = Chunker(1000, 100).split(load_file(path).documents[0])[0].fingerprint
    assert Chunker(1000, 100).split(load_file(path).documents[0])[0].fingerprint == first
    assert Chunker(500, 100).split(load_file(path).documents[0])[0].fingerprint != first
    path.write_text("two", encoding="utf-8")
    assert Chunker(1000, 100).split(load_file(path).documents[0])[0].fingerprint != first


@pytest.mark.parametrize("charset", ["windows-1252", "iso-8859-1"])
def test_html_in_its_declared_charset_is_decoded(tmp_path: Path, charset: str) -> None:
    page = (f'<html><head><meta charset="{charset}"><title>Caf\xe9 menu</title></head>'
            "<body><h1>Caf\xe9</h1><p>Cr\xe8me br\xfbl\xe9e costs 4 \xe9cus.</p></body></html>")
    path = tmp_path / "menu.html"
    path.write_bytes(page.encode(charset))
    [document] = load_file(path).documents
    assert document.title == "Caf\xe9 menu"
    assert "Cr\xe8me br\xfbl\xe9e costs 4 \xe9cus." in document.text


# -- text hygiene: nothing with a control character or a surrogate leaves the loaders ----------

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def test_control_characters_and_surrogates_are_removed_on_load(tmp_path: Path) -> None:
    """NUL arrives through a `\\u0000` escape in jsonl, a text file past its first 8 KiB and a PDF's
    text layer; PostgreSQL refuses it and a lone surrogate cannot even be encoded."""
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        json.dumps({"_id": "a\u0000b", "title": "Ti\u0000tle\u001b[31m", "text": "x\u0000y \ud83d lone\u0007 bell",
                    "url": "https://wiki.example/\u0000p"}) + "\n",
        encoding="utf-8",
    )
    (folder / "late-nul.txt").write_bytes(b"a" * 9000 + b"\x00 tail\r\nnext\x1b[2J line\r")
    (folder / "guide.md").write_bytes("# Gui\x1bde\r\n\r\nBody\x07 text\x85more \x9b2J\x7f.\r\n".encode("utf-8"))
    (folder / "page.html").write_text(  # a NUL in the first 8 KiB makes it a binary file
        f"<title>Pa\x1bge</title><p>{'z' * 9000}</p><p>x\x00y\x1b</p>", encoding="utf-8"
    )
    write_pdf(folder / "scan.pdf", [["Backups\x00 run \x1b[31m nightly."]], title="Backups")

    documents = [d for result in load_all([folder]) for d in result.documents]
    assert len(documents) == 5
    chunks = [c for d in documents for c in Chunker(300, 30).split(d)]
    for chunk in chunks:
        for value in (chunk.text, chunk.title, chunk.source, chunk.doc_id, chunk.section, chunk.origin):
            assert not UNSAFE.search(value), (chunk.doc_id, value)
    by_id = {d.doc_id: d for d in documents}
    assert by_id["ab"].title == "Title[31m"
    assert by_id["ab"].text == "xy  lone bell" and by_id["ab"].source == "https://wiki.example/p"
    text = by_id[str((folder / "late-nul.txt").resolve())].text
    assert text.endswith("a tail\nnext[2J line\n")
    guide = by_id[str((folder / "guide.md").resolve())]
    assert (guide.title, guide.text) == ("Guide", "# Guide\n\nBody text\nmore 2J.\n")
    assert "Backups run [31m nightly." in by_id[str((folder / "scan.pdf").resolve())].text


# -- only regular files are read ----------------------------------------------------------------


def _load_within(paths: list[Path], seconds: float = 20.0) -> list:
    """load_all in a thread, so a read that blocks (a FIFO nobody writes) fails the test instead
    of hanging it; a blocked reader is then released by opening the FIFO for writing once."""
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(load_all(paths)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for path in paths:
            if stat.S_ISFIFO(os.stat(path).st_mode):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"reading {paths} did not finish within {seconds:.0f} s")
    return results


def test_fifos_sockets_and_devices_are_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.txt"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nRead me.\n", encoding="utf-8")
    try:
        results = _load_within([fifo, sock_path, good, Path("/dev/null")])
        problems = {Path(p.path).name: p.reason for r in results for p in r.problems}
        assert problems == {
            "pipe.md": "not a regular file (a FIFO)",
            "sock.txt": "not a regular file (a socket)",
            "null": "not a regular file (a character device)",
        }
        assert [d.title for r in results for d in r.documents] == ["Good"]
        # met while walking a folder, they are not knowledge-base material: skipped quietly
        files, errors = discover([tmp_path])
        assert [f.name for f in files] == ["good.md"] and errors == []
    finally:
        server.close()


# -- HTML: one pass, any depth, structure kept as Markdown --------------------------------------


def test_html_code_lists_and_tables_become_markdown() -> None:
    title, text = html_to_markdown(
        "<html><head><title>Deploy &amp; run</title><style>p {color: red}</style></head><body>"
        "<h2>Steps</h2><ol><li>Build\n   the image</li><li>Push <b>it</b></li></ol>"
        "<ul><li>one<ul><li>nested</li></ul></li></ul>"
        "<pre><code>def main():\n    return 1\n</code></pre>"
        "<table><tr><th>Size</th><th>Price</th></tr><tr><td>S</td><td>4 | 5 &euro;</td></tr></table>"
        "<noscript>enable JS</noscript><footer>(c) us</footer><p>Done.<br>Really.</p></body></html>"
    )
    assert title == "Deploy & run"
    assert text == (
        "## Steps\n\n"
        "1. Build the image\n2. Push it\n\n"
        "- one\n  - nested\n\n"
        "```\ndef main():\n    return 1\n```\n\n"
        "| Size | Price |\n| --- | --- |\n| S | 4 \\| 5 \u20ac |\n\n"
        "Done.\nReally."
    )


def test_deeply_nested_and_unclosed_html_is_read_in_one_pass() -> None:
    """100,000 nested divs took minutes with a tree (every insertion scanned its siblings);
    the converter keeps no tree, so depth costs nothing (timings: benchmarks/html_bench.py)."""
    depth = 100_000
    title, text = html_to_markdown("<div>" * depth + "<h1>Deep</h1><p>bottom" + "</div>" * depth)
    assert (title, text) == ("", "# Deep\n\nbottom")
    # 500 unclosed lists and 300 unclosed nested tables: indentation stops growing, cells stay text
    _, text = html_to_markdown("<ul>" * 500 + "<li>item" + "<table><tr><td>" * 300 + "cell")
    assert text == " " * 14 + "- item\n| cell |\n| --- |"


# -- chunks keep tables, code and lists whole ---------------------------------------------------

ROWS = [f"| {i} | Carry-over of leave day number {i} is allowed until March |" for i in range(40)]
TABLE_MD = "| Day | Rule |\n| --- | --- |\n" + "\n".join(ROWS)
CODE_MD = "```python\n" + "\n".join(f"def step_{i}():\n    return run({i})  # indented\n" for i in range(25)) + "```"


def markdown_document(tmp_path: Path, body: str) -> SourceDocument:
    path = tmp_path / "handbook.md"
    path.write_text(f"# Handbook\n\n## Leave\n\n{body}\n", encoding="utf-8")
    [document] = load_file(path).documents
    return document


def test_tables_code_and_lists_that_fit_are_never_split(tmp_path: Path) -> None:
    table = "\n".join(TABLE_MD.split("\n")[:5])
    code = "```python\ndef main():\n    if ready:\n        return 1\n```"
    items = "\n".join(f"- Item {i} of the checklist." for i in range(6))
    prose = " ".join(f"Sentence {i} about leave." for i in range(12))
    document = markdown_document(tmp_path, f"{prose}\n\n{table}\n\n{prose}\n\n{code}\n\n{prose}\n\n{items}\n\n{prose}")
    chunks = Chunker(400, 40).split(document)
    assert len(chunks) > 3
    for whole in (table, code, items):
        assert sum(whole in c.text for c in chunks) == 1, whole
    for chunk in chunks:
        assert chunk.text.count("```") % 2 == 0
        assert not chunk.text.startswith(("| 1 ", "    ", "- Item 1"))


def test_oversized_tables_and_code_are_split_into_valid_markdown(tmp_path: Path) -> None:
    from retrieval.markdown_blocks import parse

    document = markdown_document(tmp_path, f"{TABLE_MD}\n\n{CODE_MD}")
    chunks = Chunker(500, 50).split(document)
    tables = [c.text for c in chunks if c.text.startswith("| Day |")]
    codes = [c.text for c in chunks if c.text.startswith("```python")]
    assert len(tables) > 1 and len(codes) > 1 and len(tables) + len(codes) == len(chunks)
    for text in tables:
        assert text.split("\n")[:2] == ["| Day | Rule |", "| --- | --- |"]
        assert [b.kind for b in parse(text)] == ["table"]
    assert [row for t in tables for row in t.split("\n")[2:]] == ROWS  # every row once, whole
    for text in codes:
        assert text.endswith("\n```") and [b.kind for b in parse(text)] == ["fence"]
        assert len(text) <= 500
    code_lines = [line for t in codes for line in t.split("\n")[1:-1]]
    assert code_lines == CODE_MD.split("\n")[1:-1]  # indentation and blank lines kept


def test_the_title_is_embedded_once_before_the_section(tmp_path: Path) -> None:
    from retrieval.ingest import embedding_text

    document = markdown_document(tmp_path, "Ask your manager before the first day off.")
    [chunk] = Chunker().split(document)
    assert chunk.section == "Handbook › Leave"  # the full path is kept with the chunk
    assert embedding_text(chunk) == "Handbook — Leave\nAsk your manager before the first day off."


def test_pypdf_repair_warnings_stay_off_the_terminal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A PDF with wrong cross-reference offsets loads (pypdf repairs it), but pypdf's own
    warning lines about it would print before askloop's output: they go to the debug log."""
    pdf = write_pdf(tmp_path / "repaired.pdf", [["Backups run nightly."]], title="Backups").read_bytes()
    shifted = re.sub(rb"(\d{10}) 00000 n", lambda m: b"%010d 00000 n" % (int(m.group(1)) + 3), pdf)
    (tmp_path / "repaired.pdf").write_bytes(shifted)
    with caplog.at_level(logging.DEBUG):
        result = load_file(tmp_path / "repaired.pdf")
    assert [d.title for d in result.documents] == ["Backups"] and result.problems == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("Ignoring wrong pointing object" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


def test_a_file_name_that_is_not_utf8_is_reported_not_ingested(tmp_path: Path) -> None:
    """Its path would be the document's id, and a path with undecodable bytes cannot be stored
    (the whole ingest used to fail with a confusing vector-store error)."""
    folder = tmp_path / "kb"
    folder.mkdir()
    bad = os.fsdecode(bytes(folder) + b"/caf\xe9.txt")
    Path(bad).write_text("Opening hours of the caf\u00e9.\n", encoding="utf-8")
    (folder / "ok.txt").write_text("Fine.\n", encoding="utf-8")
    files, errors = discover([folder])
    assert [f.name for f in files] == ["ok.txt"]
    assert [(e.path, e.reason, e.unusable_path) for e in errors] == [
        (bad, "the file name is not valid UTF-8: rename the file", False)
    ]
    files, errors = discover([Path(bad)])  # named on the command line: the command fails
    assert files == [] and [e.unusable_path for e in errors] == [True]


def test_the_title_is_the_first_real_heading_not_a_comment_in_code(tmp_path: Path) -> None:
    path = tmp_path / "setup.md"
    path.write_text("```sh\n# install the tools first\nmake install\n```\n\nSetup guide\n===========\n\nText.\n", encoding="utf-8")
    [document] = load_file(path).documents
    assert document.title == "Setup guide"
