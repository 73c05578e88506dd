"""Which version of each document search sees: a commit record per document.

Chroma has no transactions, and a document's chunks take many writes; a process killed between
them (kill -9, a power cut) would leave half a document searchable. So ingest writes a
document's new chunks *staged* (a `staged` flag in their metadata, beside the `fingerprint` of
the version they belong to), and once every one of them is stored it writes one small record in
a second collection (`<collection>.commits`, id = document id): the fingerprint of the version
search may see. One record is one write, whole or absent, on the embedded store and on a Chroma
server alike, and every replica reads the same records. The previous version's chunks are
deleted after the switch; until then, and if that deletion never happens, they are simply not
visible.

A chunk is visible when its document has a record and the chunk belongs to the recorded version,
or, for a document without a record, when the chunk is not staged: stores written before
records existed keep working untouched, and their documents get records the next time they
change. A record with an empty fingerprint hides the whole document (a deletion in progress).

Search pays one read of the records of the documents a query returned (about half a
millisecond on the embedded store: `benchmarks/query_bench.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STAGED = "staged"  # chunk metadata: visible only through its document's commit record
RECORDS_SUFFIX = ".commits"
DELETED = ""  # a record's fingerprint while the document's chunks are being deleted


def records_name(collection: str) -> str:
    """The records' collection beside `collection` (Chroma allows names up to 512 characters)."""
    return f"{collection[: 512 - len(RECORDS_SUFFIX)]}{RECORDS_SUFFIX}"


def is_visible(meta: Mapping[str, Any] | None, committed: Mapping[str, str]) -> bool:
    """Whether search may return a chunk with this metadata, given the records of its document."""
    if not meta:
        return True
    doc_id = str(meta.get("doc_id", ""))
    if doc_id in committed:
        return committed[doc_id] == str(meta.get("fingerprint", ""))
    return not meta.get(STAGED)


def doc_ids_of(metadatas: Iterable[Mapping[str, Any] | None]) -> list[str]:
    return sorted({str(m.get("doc_id", "")) for m in metadatas if m})


def describe(rows: list[tuple[str, Mapping[str, Any]]], committed: str | None) -> dict[str, Any]:
    """What ingest needs to know of one stored document, from all its chunks and its record.

    - `fingerprint`: the visible version's, when that version is complete (all the chunks its
      chunks say it has); "" otherwise, so the next ingest writes the document again.
    - `live_ids`: the chunks search sees; `chunk_ids`: every stored chunk of the document, of
      any version (what a deletion or a clean-up removes).
    - `complete`: versions written whole but never made visible (a run killed after writing
      them): ingest can commit one of them without embedding it again.
    """
    versions: dict[str, dict[str, Any]] = {}
    for chunk_id, meta in rows:
        fingerprint = str(meta.get("fingerprint", ""))
        version = versions.setdefault(
            fingerprint,
            {"ids": [], "doc_chunks": int(meta.get("doc_chunks", 0) or 0), "staged": bool(meta.get(STAGED)), "meta": meta},
        )
        version["ids"].append(chunk_id)

    def whole(version: dict[str, Any]) -> bool:
        # chunks from before chunk counts were stored (doc_chunks 0) count as whole, as they did
        return version["doc_chunks"] == len(version["ids"]) or (not version["doc_chunks"] and not version["staged"])

    if committed is not None:
        live = [committed] if committed in versions else []
    else:
        live = [fp for fp, version in versions.items() if not version["staged"]]
    fingerprint = live[0] if len(live) == 1 and whole(versions[live[0]]) else ""
    shown = versions[live[0]] if live else next(iter(versions.values()))
    meta = shown["meta"]
    return {
        "fingerprint": fingerprint,
        "committed": committed,
        "source": str(meta.get("source", "")),
        "origin": str(meta.get("origin", "")),
        "title": str(meta.get("title", "")),
        "chunk_ids": [chunk_id for chunk_id, _ in rows],
        "live_ids": [chunk_id for fp in live for chunk_id in versions[fp]["ids"]],
        "complete": {
            fp: version["ids"] for fp, version in versions.items()
            if fp not in live and version["staged"] and whole(version)
        },
    }
