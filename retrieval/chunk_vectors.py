"""A chunk's vector: what the model reads of a chunk, and its document title blended in.

Ingest embeds new chunks with it and `retrieval.reembed` re-embeds stored ones with it, so both
give a chunk the same vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.chunking import section_within
from retrieval.embedding_base import Embedder
from retrieval.types import Chunk


def embedding_text(chunk: Chunk) -> str:
    """What the model sees: the title and section give a short chunk its context. The title is
    said once: a Markdown section path starts with the document's first heading, which is its
    title ("Holidays — Sick leave", not "Holidays — Holidays › Sick leave")."""
    head = " — ".join(part for part in (chunk.title, section_within(chunk.title, chunk.section)) if part)
    return f"{head}\n{chunk.text}" if head else chunk.text


def embed_chunks(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    title_weight: float,
    title_cache: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Chunk vectors, each blended with its document title's own vector.

    A title is often the question a document answers ("How do I reset my VPN token?"); inside a
    long chunk it is a few words among hundreds and barely moves the vector. Adding the title's
    vector (then normalising) scores a chunk by about the mean of its text's and its title's
    similarity to the question, at no cost per question. Chosen on held-out feedback questions:
    it raised hit@1 on every data set we measured (e.g. 0.63 → 0.73 and 0.93 → 0.96).
    """
    texts = [embedding_text(c) for c in chunks]
    if not title_weight or not len(chunks):
        return np.asarray(embedder.encode(texts), dtype=np.float32)
    title_vectors = title_cache if title_cache is not None else {}
    missing = list(dict.fromkeys(c.title for c in chunks if c.title.strip() and c.title not in title_vectors))
    # one call: the model batches the short titles together instead of paying a call for them
    encoded = np.asarray(embedder.encode(texts + missing), dtype=np.float32)
    vectors = encoded[: len(texts)]
    title_vectors.update(zip(missing, encoded[len(texts) :]))
    for i, chunk in enumerate(chunks):
        title_vector = title_vectors.get(chunk.title)
        if title_vector is not None:
            vectors[i] = vectors[i] + title_weight * title_vector
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
