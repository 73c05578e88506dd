"""Loading every supported file kind and chunking it: no model, no store, milliseconds each."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.chunking import Chunker, chunk_id
from retrieval.loaders import discover, load_all, load_file
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
