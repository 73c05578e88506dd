"""BEIR-layout evaluation sets: corpus.jsonl, queries.jsonl, qrels/test.tsv (+ qrels/feedback.tsv)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


class DatasetError(ValueError):
    """The folder is not a usable BEIR data set; the message says what is missing or wrong."""


Qrels = dict[str, dict[str, float]]


@dataclass
class Dataset:
    path: Path
    name: str
    queries: dict[str, str]
    test: Qrels
    feedback: Qrels  # empty when the set has no qrels/feedback.tsv
    feedback_order: list[str]  # feedback query ids in file order

    @property
    def corpus(self) -> Path:
        return self.path / "corpus.jsonl"


def read_qrels(path: Path) -> tuple[Qrels, list[str]]:
    qrels: Qrels = {}
    order: list[str] = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter="\t")
            header = next(rows, None)
            if header is None:
                return qrels, order
            if [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
                raise DatasetError(f"{path}: the first line must be 'query-id<TAB>corpus-id<TAB>score'")
            for line, row in enumerate(rows, 2):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 3:
                    raise DatasetError(f"{path}:{line}: expected 3 tab-separated columns")
                query, doc, score = row[0].strip(), row[1].strip(), row[2].strip()
                try:
                    grade = float(score)
                except ValueError:
                    raise DatasetError(f"{path}:{line}: score {score!r} is not a number") from None
                if query not in qrels:
                    qrels[query] = {}
                    order.append(query)
                qrels[query][doc] = grade
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc
    return qrels, order


def load_dataset(path: Path) -> Dataset:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder (expected a BEIR data set folder)")
    for needed in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        if not (path / needed).is_file():
            raise DatasetError(f"{path} has no {needed}")
    queries: dict[str, str] = {}
    with (path / "queries.jsonl").open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                queries[str(row["_id"])] = str(row["text"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DatasetError(f"{path / 'queries.jsonl'}:{line_no}: expected {{\"_id\", \"text\"}}") from None
    test, _ = read_qrels(path / "qrels" / "test.tsv")
    feedback_path = path / "qrels" / "feedback.tsv"
    feedback, order = read_qrels(feedback_path) if feedback_path.is_file() else ({}, [])
    missing = [q for q in list(test) + order if q not in queries]
    if missing:
        raise DatasetError(f"{len(missing)} judged question(s) are not in queries.jsonl (first: {missing[0]})")
    if not test:
        raise DatasetError(f"{path / 'qrels/test.tsv'} has no judgements")
    return Dataset(path, path.resolve().name, queries, test, feedback, order)
