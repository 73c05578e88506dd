"""Take the feedback elsewhere: every answer with what was shown, its votes and corrections.

`jsonl` keeps the structure (one object per answer; `votes` and `corrections` are lists);
`csv` flattens it to one row per answer, with the lists as JSON text in their cells, so a
spreadsheet opens it and nothing is lost.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any, TextIO

from feedback.errors import InvalidFeedback

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = (
    "answer_id", "time", "question", "asker", "origin", "channel", "tuning_version", "abstained",
    "answer", "sources", "up", "down", "votes", "corrections",
)


def export_feedback(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO | None = None) -> str | int:
    """Write all rows (`FeedbackLoop.export_rows()`) to `out` and return how many; without
    `out`, return the text."""
    if fmt not in FORMATS:
        raise InvalidFeedback(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    buffer = io.StringIO()
    target = out if out is not None else buffer
    count = 0
    if fmt == "jsonl":
        for row in rows:
            target.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    else:
        writer = csv.DictWriter(target, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(_flat(row))
            count += 1
    if out is None:
        return buffer.getvalue()
    return count


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "answer_id": row["answer_id"],
        "time": row["time"],
        "question": row["question"],
        "asker": row["asker"],
        "origin": row["origin"],
        "channel": row["channel"] or "",
        "tuning_version": "" if row["tuning_version"] is None else row["tuning_version"],
        "abstained": int(bool(row["abstained"])),
        "answer": row["answer"],
        "sources": " ".join(s["doc_id"] for s in row["sources"]),
        "up": sum(1 for v in row["votes"] if v["value"] > 0),
        "down": sum(1 for v in row["votes"] if v["value"] < 0),
        "votes": json.dumps(row["votes"], ensure_ascii=False),
        "corrections": json.dumps(row["corrections"], ensure_ascii=False),
    }
