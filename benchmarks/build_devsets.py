"""Rebuild the corpora of the development sets under benchmarks/devsets/ from their sources.

Why: the learning engine is tuned and checked on data that is not the two public evaluation sets
(whose test questions must never steer it). The development sets imitate the two kinds of
knowledge base the product is judged on -- a long software reference manual, and a bank of short
canned answers titled only by category -- and are built from public, permissively licensed
documentation. The questions and qrels are hand-written and committed; only ``corpus.jsonl`` is
derived, by this script, from the pinned upstream files (checked by SHA-256).

    python benchmarks/build_devsets.py --sources /tmp/devsrc        # fetches what is missing
    python benchmarks/build_devsets.py --sources /tmp/devsrc --check  # compare with the committed corpus

Sources (see each folder's SOURCE.txt):
- flask-docs: Flask 3.1.0 sdist from PyPI, docs/*.rst (BSD-3-Clause).
- flask-sections: the same corpus as flask-docs, with section-level questions (several needs per page).
- python-faq: Debian bookworm python3.11-doc 3.11.2-6+deb12u9, html/_sources/faq/*.rst.txt (PSF License).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "devsets"

FLASK_SDIST = "flask-3.1.0.tar.gz"
FLASK_SHA256 = "5f873c5184c897c8d9d1b05df1e3d01b14910ce69607a117bd3277098a5836ac"
PYDOC_DEB = "python3.11-doc_3.11.2-6+deb12u9_all.deb"
PYDOC_SHA256 = "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"

# Flask pages that are not topics a reader looks up: change logs, licence, contributor notes,
# tables of contents, and the API page (autodoc directives with almost no prose in the sdist).
FLASK_SKIP = {
    "changes.rst", "contributing.rst", "license.rst", "api.rst", "index.rst",
    "patterns/index.rst", "tutorial/index.rst", "patterns/jquery.rst",
}

# Python FAQ: answers longer than this are cut at a paragraph boundary, so every entry stays a
# short canned answer (a few sentences), the character of the set.
FAQ_MAX_CHARS = 900
FAQ_MIN_CHARS = 120

_DROP_DIRECTIVES = {
    "toctree", "autoclass", "autofunction", "automodule", "autodata", "autoexception",
    "automethod", "autoattribute", "currentmodule", "module", "index", "image", "figure",
    "contents", "highlight", "literalinclude", "include", "tabularcolumns", "sectionauthor",
    "testsetup", "testcleanup", "raw",
}
_ADMONITIONS = {
    "note": "Note: ", "warning": "Warning: ", "tip": "Tip: ", "important": "Important: ",
    "versionadded": "New in version ", "versionchanged": "Changed in version ",
    "deprecated": "Deprecated since version ", "seealso": "See also: ", "admonition": "",
    "attention": "Attention: ", "caution": "Caution: ", "hint": "Hint: ", "danger": "Danger: ",
}
_UNDERLINE = re.compile(r"^([=\-~^*#+\"'`:.])\1{2,}\s*$")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the sources are pinned by content, not just by version)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inline(text: str) -> str:
    """Strip reST inline markup to what a reader sees."""
    text = re.sub(r":[\w:.-]+:`~?([^`<]*?)\s*<[^>`]*>`", r"\1", text)  # :ref:`text <target>`

    def role(m: re.Match[str]) -> str:
        target = m.group(1)
        if target.startswith("~"):
            target = target[1:].rsplit(".", 1)[-1]
        return target.lstrip("!")

    text = re.sub(r":[\w:.-]+:`([^`]+)`", role, text)
    text = re.sub(r"`([^`<]+?)\s*<[^>`]+>`__?", r"\1", text)  # `text <url>`_
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_{1,2}", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"\|([\w-]+)\|", r"\1", text)
    return text


def _block_end(lines: list[str], start: int) -> int:
    """Index after the indented block that follows line ``start - 1`` (blank lines included)."""
    i = start
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1
    return i


def _dedent(block: list[str]) -> list[str]:
    widths = [len(b) - len(b.lstrip()) for b in block if b.strip()]
    cut = min(widths) if widths else 0
    return [b[cut:] for b in block]


@dataclass
class Section:
    """A heading (level 0 = the page title) and the plain text under it."""

    level: int
    title: str
    lines: list[str]


def rst_sections(source: str) -> list[Section]:
    """Split a reST page into sections of plain text, headings kept as their own lines."""
    lines = source.expandtabs(4).splitlines()
    levels: list[str] = []
    sections = [Section(-1, "", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        # over+underlined or underlined heading
        if _UNDERLINE.match(line) and i + 2 < len(lines) and _UNDERLINE.match(lines[i + 2]) and lines[i + 1].strip():
            mark, title, i = "o" + line[0], lines[i + 1].strip(), i + 3
        elif (line.strip() and not line.startswith(" ") and i + 1 < len(lines)
              and _UNDERLINE.match(lines[i + 1]) and len(lines[i + 1].rstrip()) >= len(line.rstrip()) - 1):
            mark, title, i = lines[i + 1][0], line.strip(), i + 2
        else:
            mark = ""
        if mark:
            if mark not in levels:
                levels.append(mark)
            sections.append(Section(levels.index(mark), _inline(title), []))
            continue
        m = re.match(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$", line)
        if m:
            indent, name, arg = m.groups()
            end = _block_end(lines, i + 1)
            body = [b for b in lines[i + 1:end] if not re.match(r"^\s+:[\w-]+:", b) or b.strip().startswith(":param")]
            name = name.split(":")[-1]
            if name in _DROP_DIRECTIVES:
                pass
            elif name in ("code-block", "code", "sourcecode", "doctest", "parsed-literal", "testcode"):
                sections[-1].lines += [indent + b for b in _dedent(body)]
            elif name in _ADMONITIONS:
                head = _ADMONITIONS[name] + _inline(arg)
                content = [_inline(b) for b in _dedent(body)]
                sections[-1].lines += [indent + (head + " " + (content[0] if content else "")).strip()]
                sections[-1].lines += [indent + t for t in content[1:]]
            else:  # only, tabs, container, rubric, py:data, ...: the content, parsed like the rest
                if arg and name not in ("only", "container", "tabs", "class"):  # py:data:: DEBUG, rubric
                    sections[-1].lines.append(indent + _inline(arg))
                lines[i + 1:end] = [indent + b for b in _dedent(body)]
                i += 1
                continue
            i = end
            continue
        if re.match(r"^\s*\.\.(\s|$)", line):  # comment, link target, substitution definition
            i = _block_end(lines, i + 1)
            continue
        if re.match(r"^:[\w-]+:", line) and len(sections) == 1:  # page metadata (:tocdepth: 2)
            i += 1
            continue
        if line.strip() == "::" or re.match(r"^-{4,}\s*$", line):  # literal marker, transition
            i += 1
            continue
        text = re.sub(r"(\S)::\s*$", r"\1:", line)
        text = re.sub(r"\s+::\s*$", "", text)
        sections[-1].lines.append(_inline(text))
        i += 1
    for s in sections:
        s.lines = _squeeze(s.lines)
    return sections


def _squeeze(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def _fetch(sources: Path, name: str, command: list[str]) -> Path:
    path = sources / name
    if not path.exists():
        sources.mkdir(parents=True, exist_ok=True)
        subprocess.run(command, cwd=sources, check=True)
    return path


def _check(path: Path, expected: str) -> None:
    if expected and sha256(path) != expected:
        raise SystemExit(f"{path}: SHA-256 {sha256(path)} is not the pinned {expected}")


def flask_corpus(sources: Path) -> list[dict[str, str]]:
    """One document per Flask documentation page: the page title, every section's text."""
    sdist = _fetch(sources, FLASK_SDIST, [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary",
                                          ":all:", "--no-deps", "flask==3.1.0", "-d", "."])
    _check(sdist, FLASK_SHA256)
    docs: list[dict[str, str]] = []
    with tarfile.open(sdist) as tar:
        members = sorted((m for m in tar.getmembers() if re.match(r"^flask-3\.1\.0/docs/.+\.rst$", m.name)),
                         key=lambda m: m.name)
        for member in members:
            rel = member.name.split("/docs/", 1)[1]
            if rel in FLASK_SKIP:
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            sections = rst_sections(handle.read().decode("utf-8"))
            titled = [s for s in sections if s.level >= 0]
            title = titled[0].title
            body: list[str] = list(sections[0].lines)
            for s in titled:
                if s is not titled[0]:
                    body += ["", s.title, ""]
                body += s.lines
            text = "\n".join(_squeeze(body)).strip()
            doc_id = "fl-" + rel[: -len(".rst")].replace("/", "-").replace("_", "-")
            docs.append({"_id": doc_id, "title": title, "text": text})
    return docs


def _shorten(lines: list[str], limit: int) -> str:
    """The answer's paragraphs, cut after the first one that reaches ``limit`` characters."""
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    kept: list[str] = []
    for p in paragraphs:
        if kept and len("\n\n".join(kept + [p])) > limit:
            break
        kept.append(p)
    return "\n\n".join(kept).strip()


FAQ_FILES = ["general", "programming", "design", "library", "extending", "windows", "gui", "installed"]
FAQ_PREFIX = {"general": "gen", "programming": "prog", "design": "des", "library": "lib",
              "extending": "ext", "windows": "win", "gui": "gui", "installed": "inst"}


def python_faq_corpus(sources: Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    """One document per FAQ answer, titled by its category; also returns id -> the FAQ's question."""
    deb = _fetch(sources, PYDOC_DEB, ["apt-get", "download", "python3.11-doc=3.11.2-6+deb12u9"])
    _check(deb, PYDOC_SHA256)
    docs: list[dict[str, str]] = []
    questions: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        faq = Path(tmp) / "usr/share/doc/python3.11/html/_sources/faq"
        for name in FAQ_FILES:
            sections = rst_sections((faq / f"{name}.rst.txt").read_text(encoding="utf-8"))
            deepest = max(s.level for s in sections)
            category, n = "", 0
            for s in sections:
                if s.level < deepest:  # the page title, then its category headings
                    category = re.sub(r'^"|"$| FAQ$', "", s.title.replace('" FAQ', '"')) if s.level >= 0 else category
                    continue
                text = _shorten(s.lines, FAQ_MAX_CHARS)
                n += 1
                if len(text) < FAQ_MIN_CHARS:
                    continue
                doc_id = f"pf-{FAQ_PREFIX[name]}-{n:03d}"
                docs.append({"_id": doc_id, "title": category, "text": text})
                questions[doc_id] = s.title
    return docs, questions


def question_files(folder: Path) -> dict[str, str]:
    """queries.jsonl and the two qrels files, from the hand-written ``questions.tsv``.

    ``questions.tsv`` (corpus-id, split, text) is where the questions are written and reviewed;
    the BEIR files are derived from it so ids stay systematic: ``<doc>-f<n>`` feedback, ``<doc>-t<n>`` test.
    """
    rows = [line.split("\t") for line in (folder / "questions.tsv").read_text(encoding="utf-8").splitlines()[1:] if line]
    queries: list[str] = []
    qrels: dict[str, list[str]] = {"feedback": [], "test": []}
    counts: dict[tuple[str, str], int] = {}
    for doc_id, split, text in rows:
        key = (doc_id, split)
        n = counts.get(key, 0)
        counts[key] = n + 1
        qid = f"{doc_id}-{split[0]}{n}"
        queries.append(json.dumps({"_id": qid, "text": text.strip()}, ensure_ascii=False) + "\n")
        qrels[split].append(f"{qid}\t{doc_id}\t1\n")
    header = "query-id\tcorpus-id\tscore\n"
    return {"queries.jsonl": "".join(queries), "qrels/feedback.tsv": header + "".join(qrels["feedback"]),
            "qrels/test.tsv": header + "".join(qrels["test"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=Path, default=Path(tempfile.gettempdir()) / "askloop-devsrc",
                        help="folder holding (or to download) the upstream archives")
    parser.add_argument("--check", action="store_true", help="only compare with the committed corpora")
    parser.add_argument("--list-faq", action="store_true", help="print id, category, FAQ question (to write queries)")
    args = parser.parse_args()
    flask = flask_corpus(args.sources)
    built = {"flask-docs": flask, "flask-sections": flask}
    faq_docs, faq_questions = python_faq_corpus(args.sources)
    built["python-faq"] = faq_docs
    if args.list_faq:
        for d in faq_docs:
            print(f"{d['_id']}\t{d['title']}\t{faq_questions[d['_id']]}\t{len(d['text'])}")
        return 0
    status = 0
    for name, docs in built.items():
        folder = HERE / name
        files = {"corpus.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in docs)}
        if (folder / "questions.tsv").exists():
            files.update(question_files(folder))
        ids = {d["_id"] for d in docs}
        for rel, fresh in files.items():
            target = folder / rel
            if rel.startswith("qrels/"):
                missing = {line.split("\t")[1] for line in fresh.splitlines()[1:]} - ids
                if missing:
                    raise SystemExit(f"{name}/{rel}: unknown documents {sorted(missing)}")
            if args.check:
                same = target.exists() and target.read_text(encoding="utf-8") == fresh
                print(f"{name}/{rel}: {'matches' if same else 'DIFFERS'}")
                status |= 0 if same else 1
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(fresh, encoding="utf-8")
        print(f"{name}: {len(docs)} documents" + ("" if args.check else f", written to {folder}"))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
