"""A learned query adapter: a residual linear map of the question vector, from validated pairs.

Following the embedding-adapter idea (train a transform of the *query* from relevance feedback),
kept small and safe: W = argmin Σ‖q·W − t‖² + λ‖W − I‖² (closed form, a 384×384 solve), where t is
the best chunk of the document a 👍 or an approved correction validated for q, and, for a 👎,
q pushed away from the shown document's best chunk. λ is picked on an internal held-out part of
the feedback, and the adapter is only kept when it beats the identity there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from retrieval.learned import PASSAGE_PREFIX

ChunkVectors = tuple[list[str], np.ndarray]  # (doc id of each chunk, unit chunk vectors)

RIDGE_GRID = (0.25, 1.0, 4.0)  # λ per training pair
PUSH = 0.5  # how far a 👎 pushes the question away from the document it rejected
MIN_GAIN = 0.005  # held-out MRR gain the adapter must bring to be kept
HELDOUT_SHARE = 0.2


@dataclass
class AdapterResult:
    matrix: np.ndarray | None
    note: str
    stats: dict[str, Any] = field(default_factory=dict)


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-6)


def _heldout(question: str) -> bool:
    digest = hashlib.sha1(question.encode("utf-8")).digest()
    return digest[0] < 256 * HELDOUT_SHARE


def fit(queries: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    dim = queries.shape[1]
    lam = ridge * len(queries)
    a = queries.T @ queries + lam * np.eye(dim, dtype=np.float64)
    b = queries.T @ targets + lam * np.eye(dim, dtype=np.float64)
    return np.linalg.solve(a, b).astype(np.float32)


def doc_mrr(queries: np.ndarray, positives: list[str], chunk_docs: list[str], chunks: np.ndarray,
            matrix: np.ndarray | None) -> float:
    """MRR of the validated document when documents are scored by their best chunk."""
    if not len(queries):
        return 0.0
    q = queries if matrix is None else _unit_rows(queries @ matrix)
    docs = sorted(set(chunk_docs))
    index = {d: i for i, d in enumerate(docs)}
    column = np.array([index[d] for d in chunk_docs])
    order = np.argsort(column, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(column[order]) != 0])
    scores = np.maximum.reduceat((q @ chunks.T)[:, order], starts, axis=1)  # (n, docs): best chunk
    total = 0.0
    for row, doc in zip(scores, positives):
        if doc not in index:
            continue
        rank = int((row > row[index[doc]]).sum()) + 1
        total += 1.0 / rank if rank <= 10 else 0.0
    return total / len(queries)


def train_adapter(
    memories: list[Any],
    vectors: dict[str, np.ndarray],
    min_pairs: int,
    chunk_vectors: Callable[[], ChunkVectors] | None,
) -> AdapterResult:
    positives = [m for m in memories if m.weight > 0 and not m.doc_id.startswith(PASSAGE_PREFIX)]
    negatives = [m for m in memories if m.weight < 0]
    if len(positives) < min_pairs:
        return AdapterResult(None, f"no query adapter: {len(positives)} validated pair(s), {min_pairs} needed")
    if chunk_vectors is None:
        return AdapterResult(None, "no query adapter: document vectors are not available to the engine")
    chunk_docs, chunks = chunk_vectors()
    if not len(chunk_docs):
        return AdapterResult(None, "no query adapter: the knowledge base is empty")
    by_doc: dict[str, np.ndarray] = {}
    for doc in {m.doc_id for m in positives + negatives}:
        mask = np.array([d == doc for d in chunk_docs])
        if mask.any():
            by_doc[doc] = chunks[mask]

    def pairs(items: list[Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        qs, ts, docs = [], [], []
        for m in items:
            if m.doc_id not in by_doc or m.question not in vectors:
                continue
            q = np.asarray(vectors[m.question], dtype=np.float32)
            doc_chunks = by_doc[m.doc_id]
            best = doc_chunks[int(np.argmax(doc_chunks @ q))]
            target = best if m.weight > 0 else q - PUSH * best
            qs.append(q)
            ts.append(target / max(np.linalg.norm(target), 1e-6))
            docs.append(m.doc_id if m.weight > 0 else "")
        dim = chunks.shape[1]
        return (np.array(qs, dtype=np.float32).reshape(-1, dim), np.array(ts, dtype=np.float32).reshape(-1, dim), docs)

    train = [m for m in positives + negatives if not _heldout(m.question)]
    held = [m for m in positives if _heldout(m.question)]
    q_train, t_train, _ = pairs(train)
    q_held, _, held_docs = pairs(held)
    if len(q_held) < 10 or len(q_train) < 10:
        return AdapterResult(None, "no query adapter: too few pairs to hold some out for checking")
    before = doc_mrr(q_held, held_docs, chunk_docs, chunks, None)
    best_ridge, best_mrr = None, before
    for ridge in RIDGE_GRID:
        mrr = doc_mrr(q_held, held_docs, chunk_docs, chunks, fit(q_train, t_train, ridge))
        if mrr > best_mrr:
            best_ridge, best_mrr = ridge, mrr
    stats = {"pairs": len(q_train) + len(q_held), "heldout": len(q_held), "mrr_before": round(before, 4),
             "mrr_after": round(best_mrr, 4), "ridge": best_ridge}
    if best_ridge is None or best_mrr < before + MIN_GAIN:
        return AdapterResult(
            None, f"query adapter left out: no gain on {len(q_held)} held-out pair(s) (MRR {before:.3f})", stats
        )
    q_all, t_all, _ = pairs(positives + negatives)
    matrix = fit(q_all, t_all, best_ridge)
    return AdapterResult(
        matrix,
        f"query adapter from {len(q_all)} pair(s): held-out MRR {before:.3f} → {best_mrr:.3f}",
        stats,
    )


def store_chunk_reads(
    chunk_store: Any, limit: int = 200_000
) -> tuple[Callable[[], ChunkVectors], Callable[[], dict[str, str]]]:
    """Chunk vectors (no re-embedding) and document id → title, straight from the vector store.

    Both come from one paged read of the store, made lazily on the first use of either: query
    tuning needs the vectors and its anchors need the titles, which sit in the same metadata.
    """

    @cache
    def read() -> tuple[ChunkVectors, dict[str, str]]:
        docs: list[str] = []
        titles: dict[str, str] = {}
        blocks = []
        for got in chunk_store.pages(["embeddings", "metadatas"], "reading chunk vectors", limit):
            for meta in got["metadatas"]:
                doc, title = str((meta or {}).get("doc_id", "")), str((meta or {}).get("title", "") or "")
                docs.append(doc)
                if doc and title.strip():
                    titles.setdefault(doc, title)
            blocks.append(np.asarray(got["embeddings"], dtype=np.float32))
        if not blocks:
            return ([], np.zeros((0, 0), dtype=np.float32)), titles
        return (docs, _unit_rows(np.concatenate(blocks))), titles

    return (lambda: read()[0]), (lambda: read()[1])
