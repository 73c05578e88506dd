"""The learning engine: validated feedback in, a reviewable Proposal out.

Its only input is `FeedbackStore.training_feedback()`: counted, weighted votes and approved
corrections. Every one becomes a *memory* (the question it was given on, a document, a signed
weight); the payload stores them compactly and `retrieval.learned` applies them at query time
(see that module for the query-aware kernel and the bounds). The engine also:

* bounds influence before anything is stored: each vote weighs at most its policy weight, each
  user's memories together at most `user_cap`, each document's at most `doc_cap`;
* turns corrected text without a document into a passage that lives in the tuning (with its
  vector and provenance) and corrections citing a document into candidates for similar questions;
* tunes the query encoder (a LoRA update of the embedding model, `feedback.encoder_tuning`) once
  enough (question, document) pairs are validated; with fewer, tries a small residual linear
  query adapter, kept only if it helps on a held-out part of the feedback (`feedback.adapter`);
* explains itself: a `diff` (structured) and a `summary` (one screen) saying what would change
  and which feedback caused it.

The rules live in their own modules: `feedback.memories` (the knobs, and feedback → memories with
their bounds), `feedback.calibration` (the knobs checked on held-out feedback),
`feedback.proposal_text` (the diff and summary); this module assembles the payload.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from feedback.calibration import Calibration, Memo, Search, calibrate, targets
from feedback.memories import LearningParams, Memory, collect_memories, is_document_ref, shrunk_centre, top_document
from feedback.proposal_text import describe, render_summary
from feedback.records import TrainingCorrection, TrainingFeedback, TrainingVote
from retrieval.learned import (
    KIND_ASKLOOP,
    KIND_DOC_BOOST,
    PAYLOAD_FORMAT,
    MemoryParams,
    encode_matrix,
)

STRATEGIES = ("none", "doc-boost", "askloop")
EMBED_BATCH = 256


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class LearnedProposal:
    """What the engine would apply: the payload, plus the diff and summary a moderator reads."""

    strategy: str
    payload: dict[str, Any]
    diff: dict[str, Any]
    summary: str
    memories: list[Memory] = field(default_factory=list)


def _embed(
    encoder: Encoder, texts: list[str], cache: dict[str, np.ndarray] | None
) -> np.ndarray:
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    cache = cache if cache is not None else {}
    missing = [t for t in texts if t not in cache]
    if missing:
        # Questions are short: bigger batches amortise the model's per-batch cost (≈2x faster).
        takes_batch = "batch_size" in inspect.signature(encoder.encode).parameters
        batched: Any = encoder  # an Embedder takes a batch size; the Encoder protocol need not
        vectors = batched.encode(missing, batch_size=EMBED_BATCH) if takes_batch else encoder.encode(missing)
        for text, vector in zip(missing, vectors):
            cache[text] = np.asarray(vector, dtype=np.float32)
    return np.stack([cache[t] for t in texts]).astype(np.float32)


def _payload_id(payload: dict[str, Any]) -> str:
    """What was learned, hashed: the same feedback gives the same id, so a schedule never piles up
    identical proposals. The document titles are left out: they are a snapshot of the knowledge
    base (see `LearnedTuning.explained`), and documents added since do not make new feedback."""
    learned = {k: v for k, v in payload.items() if k != "titles"}
    blob = json.dumps(learned, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class LearningEngine:
    """Builds proposals. `encoder` embeds questions (the bot's own embedder)."""

    def __init__(
        self,
        encoder: Encoder,
        params: LearningParams | None = None,
        *,
        vector_cache: dict[str, np.ndarray] | None = None,
        chunk_vectors: Callable[[], Any] | None = None,
        doc_titles: Callable[[], dict[str, str]] | None = None,
        model_id: str | None = None,
        search: Search | None = None,
    ) -> None:
        """`search`: base candidates (no tuning) for questions with their vectors, the knowledge
        base's own search; calibration ranks held-out feedback on them (without it, the defaults).
        `chunk_vectors`: returns (doc id per chunk, chunk vectors) for query tuning
        (`feedback.adapter.store_chunk_reads(chunk_store)`); without it neither the query encoder
        nor the adapter is trained. `doc_titles`: doc id → title (the same call's second reader),
        the encoder's anchors.
        `model_id`: which model `encoder` is (default: its `model_id`, as `Embedder` has); question
        vectors stored with the feedback are reused only when they come from this same model."""
        self.encoder = encoder
        self.params = params or LearningParams()
        self.vector_cache = vector_cache if vector_cache is not None else {}
        self.chunk_vectors = chunk_vectors
        self.doc_titles = doc_titles
        self.model_id = model_id if model_id is not None else getattr(encoder, "model_id", None)
        self.dimension: int | None = getattr(encoder, "dimension", None)  # None: not known, not checked
        self.search = search

    # -- strategies -----------------------------------------------------------------------------
    def build(
        self,
        feedback: TrainingFeedback,
        strategy: str = "askloop",
        doubtful: set[tuple[int, str]] | frozenset[tuple[int, str]] = frozenset(),
        golden: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> LearnedProposal:
        """`golden`: the golden set's (question, documents), held out when calibrating."""
        if strategy == "askloop":
            return self.build_askloop(feedback, doubtful, golden)
        if strategy == "doc-boost":
            return self.build_doc_boost(feedback)
        if strategy == "none":
            payload = {"kind": "none", "format": PAYLOAD_FORMAT}
            payload["id"] = _payload_id(payload)
            return LearnedProposal("none", payload, {"strategy": "none"}, "No change (strategy none).")
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")

    def build_doc_boost(self, feedback: TrainingFeedback) -> LearnedProposal:
        """The per-document baseline: +1 per 👍 or approved correction, −1 per 👎, any question."""
        boosts: dict[str, float] = defaultdict(float)
        for vote in feedback.votes:
            doc = top_document(vote.shown)
            if doc:
                boosts[doc] += 1.0 if vote.value > 0 else -1.0
        for correction in feedback.corrections:
            ref = correction.doc_id or (correction.url if is_document_ref(correction.url) else None)
            if ref:
                boosts[str(ref)] += 1.0
        boosts = {d: b for d, b in boosts.items() if b}
        payload: dict[str, Any] = {"kind": KIND_DOC_BOOST, "format": PAYLOAD_FORMAT, "boosts": boosts}
        payload["id"] = _payload_id(payload)
        diff = {"strategy": "doc-boost", "documents": [{"doc_id": d, "boost": b} for d, b in sorted(boosts.items())]}
        summary = f"Per-document boosts for {len(boosts)} document(s), applied to every question."
        return LearnedProposal("doc-boost", payload, diff, summary)

    def build_askloop(
        self,
        feedback: TrainingFeedback,
        doubtful: set[tuple[int, str]] | frozenset[tuple[int, str]] = frozenset(),
        golden: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> LearnedProposal:
        self.seed_stored_vectors(feedback)
        calibration = self.calibrate(feedback, doubtful, golden)
        params = replace(self.params, memory=calibration.params) if calibration else self.params
        memories, passages, skipped = collect_memories(feedback, params, doubtful)
        questions = sorted({m.question for m in memories} | {p.question for p in passages})
        question_index = {q: i for i, q in enumerate(questions)}
        vectors = _embed(self.encoder, questions, self.vector_cache)
        payload: dict[str, Any] = {
            "kind": KIND_ASKLOOP,
            "format": PAYLOAD_FORMAT,
            "params": params.memory.as_dict(),
            "dim": int(vectors.shape[1]) if len(questions) else 0,
            "model": self.model_id,  # which model made the question vectors (see remember_vectors)
            "memories": {
                "questions": encode_matrix(vectors) if len(questions) else None,
                "texts": questions,
                "question_index": [question_index[m.question] for m in memories],
                "doc_ids": [m.doc_id for m in memories],
                "weights": [round(float(m.weight), 4) for m in memories],
                "refs": [m.ref for m in memories],
            },
            "passages": [
                {
                    "doc_id": p.doc_id,
                    "title": p.title,
                    "text": p.text,
                    "question": p.question,
                    "correction_id": p.correction_id,
                    "source": p.source,
                }
                for p in passages
            ],
        }
        if len(questions):
            payload["center"] = encode_matrix(shrunk_centre(vectors, params.center_prior), "float32")
        if passages:
            payload["passage_vectors"] = encode_matrix(_embed(self.encoder, [p.text for p in passages], self.vector_cache))
        if memories:
            self._titles(payload, params.memory)
        query_note = self.tune_query(memories, payload)
        payload["id"] = _payload_id(payload)
        diff = describe(memories, passages, skipped, params, query_note)
        if calibration is not None:
            diff["calibration"] = calibration.report
        return LearnedProposal("askloop", payload, diff, render_summary(diff), memories)

    def calibrate(
        self,
        feedback: TrainingFeedback,
        doubtful: set[tuple[int, str]] | frozenset[tuple[int, str]],
        golden: Sequence[tuple[str, Sequence[str]]],
    ) -> Calibration | None:
        """The memory settings this team's own feedback supports (`feedback.calibration`); None
        when calibration is turned off."""
        if not self.params.calibrate:
            return None
        memories, _, _ = collect_memories(feedback, self.params, doubtful)
        found = targets(feedback)
        texts = sorted({m.question for m in memories} | set(found) | {q for q, docs in golden if docs})
        if texts:
            _embed(self.encoder, texts, self.vector_cache)
        memos = [Memo(m.question, m.doc_id, m.weight, m.origin == "vote") for m in memories]
        return calibrate(memos, found, self.vector_cache, self.params.memory, self.search,
                         center_prior=self.params.center_prior, titles=self._title_vectors(self.params.memory),
                         golden=golden)

    def tune_query(self, memories: list[Memory], payload: dict[str, Any]) -> str:
        """Tune the query encoder when enough pairs are validated, else try the linear adapter;
        the result goes into `payload`. Returns the line the proposal shows about it."""
        from feedback.adapter import train_adapter
        from feedback.encoder_tuning import train_query_encoder

        params = self.params
        def load_base() -> Any:  # the torch model, read only when there is enough to train on
            return getattr(self.encoder, "sentence_transformer", None)

        tuned = train_query_encoder(memories, self.vector_cache, None, self.chunk_vectors, params.encoder,
                                    self.doc_titles, load_base=load_base)
        if tuned.weights is not None:
            payload["query_encoder"] = {
                "model": self.model_id,
                "model_name": getattr(self.encoder, "configured_name", ""),
                "rank": params.encoder.rank,
                "alpha": params.encoder.alpha,
                "targets": list(params.encoder.shape.targets),
                "blend": params.encoder.blend,
                "reach": params.encoder.reach,
                # the title rule for the encoder's reach keeps its configured margin: calibration
                # measures memories, not the encoder (which it does not retrain per fold)
                "title_margin": params.memory.title_margin,
                "weights": {name: encode_matrix(w) for name, w in sorted(tuned.weights.items())},
                "stats": tuned.stats,
            }
            return tuned.note
        result = train_adapter(memories, self.vector_cache, params.adapter_min_pairs, self.chunk_vectors)
        if result.matrix is not None:
            payload["adapter"] = {"matrix": encode_matrix(result.matrix, "float32"), "stats": result.stats}
        return f"{tuned.note}; {result.note}"

    def _title_texts(self, memory: MemoryParams) -> tuple[list[str], list[str]] | None:
        titles = {d: t for d, t in (self.doc_titles() if self.doc_titles else {}).items() if t.strip()}
        if min(memory.title_margin, self.params.memory.title_margin) >= 2 or len(titles) < 2:
            return None
        docs = sorted(titles)
        return docs, [titles[d] for d in docs]

    def _title_vectors(self, memory: MemoryParams) -> tuple[list[str], np.ndarray] | None:
        """(doc ids, title vectors) for the title rule, or None when it is off or titles are unknown."""
        known = self._title_texts(memory)
        return None if known is None else (known[0], _embed(self.encoder, known[1], self.vector_cache))

    def _titles(self, payload: dict[str, Any], memory: MemoryParams) -> None:
        """Every document's title vector goes into `payload` (see `LearnedTuning.explained`),
        unless the rule is off or no titles are known."""
        known = self._title_texts(memory)
        if known is None:
            return
        docs, texts = known
        vectors = _embed(self.encoder, texts, self.vector_cache)
        block = {"doc_ids": docs, "texts": texts, "vectors": encode_matrix(vectors)}
        payload["titles"] = block | {"id": _payload_id(block)}

    def seed_stored_vectors(self, feedback: TrainingFeedback) -> int:
        """Put the question vectors the bot stored at answer time into the cache, so only
        questions without one (answers recorded before vectors were kept) are embedded.

        A stored vector is trusted only when it was made by this engine's model (same `model_id`,
        which names the model and its dimension) and has that dimension; after a model change
        the old vectors are ignored and the questions embedded again. Returns how many were used.
        """
        if not self.model_id:
            return 0
        used = 0
        items: list[TrainingVote | TrainingCorrection] = [*feedback.votes, *feedback.corrections]
        for item in items:
            vector = item.question_vector
            if vector is None or item.vector_model != self.model_id or item.question in self.vector_cache:
                continue
            if self.dimension is not None and vector.shape != (self.dimension,):
                continue
            self.vector_cache[item.question] = np.asarray(vector, dtype=np.float32)
            used += 1
        return used

    def remember_vectors(self, payload: dict[str, Any] | None) -> int:
        """Seed the question-vector cache from an earlier payload (learning is then incremental:
        only questions asked since need embedding). Returns how many vectors were reused.

        Vectors another model made mean something else, even at the same dimension: they are
        reused only when the payload names this engine's model (older payloads name none and are
        trusted when the dimension matches)."""
        payload = payload or {}
        made_by = payload.get("model")
        if made_by and self.model_id and made_by != self.model_id:
            return 0
        from retrieval.learned import decode_matrix

        reused = 0
        for block, vectors in ((payload.get("memories"), "questions"), (payload.get("titles"), "vectors")):
            texts, blob = (block or {}).get("texts"), (block or {}).get(vectors)
            if not texts or not blob:
                continue
            matrix = decode_matrix(blob)
            if len(matrix) != len(texts) or (self.dimension is not None and matrix.shape[1] != self.dimension):
                continue
            for text, vector in zip(texts, matrix):
                self.vector_cache.setdefault(text, vector)
            reused += len(texts)
        return reused


# -- explaining a proposal ---------------------------------------------------------------------------
