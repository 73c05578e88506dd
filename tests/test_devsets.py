"""The development sets under benchmarks/devsets/ stay well-formed BEIR folders.

Why: the learning engine is tuned on them (never on the public sets' test questions), so a
broken id, a question in both splits or a qrel to a missing document would silently skew every
figure measured on them. No model is loaded: this checks the files only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

DEVSETS = Path(__file__).resolve().parent.parent / "benchmarks" / "devsets"
SETS = sorted(p.name for p in DEVSETS.iterdir() if (p / "corpus.jsonl").exists())


def _qrels(path: Path) -> list[tuple[str, str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    return [tuple(line.split("\t")) for line in lines[1:]]  # type: ignore[misc]


def test_the_sets_are_there() -> None:
    assert {"flask-docs", "flask-sections", "python-faq"} <= set(SETS)


@pytest.mark.parametrize("name", SETS)
def test_derived_files_match_the_written_questions(name: str) -> None:
    """queries.jsonl and the qrels are derived from questions.tsv; an edit to one alone would
    measure questions nobody reviewed."""
    sys.path.insert(0, str(DEVSETS.parent))
    try:
        from build_devsets import question_files
    finally:
        sys.path.remove(str(DEVSETS.parent))
    for rel, text in question_files(DEVSETS / name).items():
        assert (DEVSETS / name / rel).read_text(encoding="utf-8") == text, rel


def test_sets_sharing_a_corpus_share_it_byte_for_byte() -> None:
    assert (DEVSETS / "flask-sections" / "corpus.jsonl").read_bytes() == (DEVSETS / "flask-docs" / "corpus.jsonl").read_bytes()


@pytest.mark.parametrize("name", SETS)
def test_devset_is_consistent(name: str) -> None:
    folder = DEVSETS / name
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    doc_ids = {d["_id"] for d in docs}
    query_ids = {q["_id"] for q in queries}
    assert len(doc_ids) == len(docs) and len(query_ids) == len(queries), "duplicate ids"
    assert all(d["title"].strip() and d["text"].strip() for d in docs)
    assert all(q["text"].strip() for q in queries)
    feedback, test = _qrels(folder / "qrels" / "feedback.tsv"), _qrels(folder / "qrels" / "test.tsv")
    for qid, did, score in feedback + test:
        assert qid in query_ids and did in doc_ids and score == "1"
    assert not {q for q, _, _ in feedback} & {q for q, _, _ in test}, "a question in both splits"
    assert {q for q, _, _ in feedback} | {q for q, _, _ in test} == query_ids
    # some needs get feedback and some do not: the split also measures harm to needs nobody voted on
    with_feedback = {d for _, d, _ in feedback}
    assert with_feedback and {d for _, d, _ in test} - with_feedback
    assert (folder / "SOURCE.txt").exists()
