"""Learned tunings: what an applied TuningVersion does to retrieval.

A tuning version's payload is plain JSON written by the learning engine (`feedback.learning`).
This module turns it into a `retrieval.tuning.Tuning` and knows nothing of where it came from:

* `LearnedTuning` (kind ``askloop``) — query-aware memory. Every validated vote or approved
  correction is a *memory*: the question it was given on (a vector), a document, a signed
  weight. A new question moves a document by the kernel-weighted sum of that document's
  memories, so feedback counts for questions similar to the one it was given on, in
  proportion to that similarity, and for nothing else. Adjustments are added in units of the
  candidates' own score spread (MiniLM cosines cluster: a fixed boost either does nothing or
  swamps the ranking) and bounded by a tanh cap per document.
  A memory counts only for questions its remembered question describes at least as well as the
  title of every other document does (`LearnedTuning.explained`), so feedback on one entry of a
  knowledge base leaves the questions of its neighbouring entries alone.
  Approved corrections also *augment*: their cited document becomes a candidate for similar
  questions, and corrected free text becomes a passage retrievable for similar questions.
  Once enough pairs are validated, a *tuned query encoder* (the embedding model plus a LoRA
  update, `retrieval.query_encoder`) gives the vector to search with; before that, an optional
  residual linear *query adapter* may map the question vector. Memories always compare the
  base model's vectors, so they mean the same whatever the encoder.
* `DocBoostTuning` (kind ``doc-boost``) — the per-document boost some products use, whatever
  the question: kept as a baseline for `askloop eval --strategy doc-boost`.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from retrieval.query_encoder import TunedEncoder
from retrieval.tuning import NoTuning
from retrieval.tuning_schema import (
    PAYLOAD_FORMAT,
    KIND_ASKLOOP,
    KIND_DOC_BOOST,
    PASSAGE_PREFIX,
    PayloadError,
    encode_matrix,
    decode_matrix,
    MemoryParams,
)
from retrieval.types import Hit

__all__ = [
    "PAYLOAD_FORMAT",
    "KIND_ASKLOOP",
    "KIND_DOC_BOOST",
    "PASSAGE_PREFIX",
    "PayloadError",
    "encode_matrix",
    "decode_matrix",
    "MemoryParams",
    "CorrectionPassage",
    "LearnedTuning",
    "DocBoostTuning",
    "kernel",
    "bounded",
    "spread_of",
]

_SHARED = frozenset({"centred", "raw", "memory_centred", "best_other_title"})


def kernel(similarity: np.ndarray, tau: float | np.ndarray, power: float) -> np.ndarray:
    """0 below tau, rising to 1 for an identical question (`tau`: one, or one per similarity)."""
    x = np.clip((np.asarray(similarity, dtype=np.float32) - tau) / np.maximum(1e-6, 1.0 - tau), 0.0, 1.0)
    return x**power


def bounded(adjustment: np.ndarray, cap: float) -> np.ndarray:
    """Soft cap: linear for small sums, never beyond ±cap however many votes pile up."""
    return cap * np.tanh(np.asarray(adjustment, dtype=np.float32) / cap)


def spread_of(scores: np.ndarray, floor: float) -> float:
    if len(scores) < 2:
        return floor
    return max(floor, float(np.std(scores)))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass(frozen=True)
class CorrectionPassage:
    """Corrected text that lives in the tuning itself, keyed by the question that was asked."""

    doc_id: str
    title: str
    text: str
    question: str
    correction_id: int | None


class LearnedTuning:
    """Query-aware memory + augmentation + optional query adapter (see the module docstring)."""

    def __init__(
        self,
        *,
        version: int | None,
        params: MemoryParams,
        questions: np.ndarray,
        memory_question: np.ndarray,
        memory_doc: list[str],
        memory_weight: np.ndarray,
        passages: list[CorrectionPassage] | None = None,
        passage_vectors: np.ndarray | None = None,
        adapter: np.ndarray | None = None,
        query_encoder: Callable[[], TunedEncoder] | None = None,
        encoder_blend: float = 1.0,
        encoder_reach: float = 0.0,
        center: np.ndarray | None = None,
        memory_is_vote: np.ndarray | None = None,
        title_docs: list[str] | None = None,
        title_vectors: np.ndarray | None = None,
        title_texts: list[str] | None = None,
        encoder_title_margin: float | None = None,
    ) -> None:
        """`encoder_title_margin`: the title rule's margin for the tuned encoder's reach (default:
        the memories' `title_margin`); calibration moves the memories' margin only, since it
        measures memories, not the encoder."""
        self.version = version
        self.params = params
        self.center = None if center is None else np.asarray(center, dtype=np.float32).reshape(-1)
        questions = np.asarray(questions, dtype=np.float32)
        if questions.ndim != 2:
            questions = questions.reshape(len(questions), -1) if len(questions) else np.zeros((0, 0), np.float32)
        self.raw_questions = questions
        self.questions = self._centred(questions)
        self.memory_question = np.asarray(memory_question, dtype=np.int64)
        self.memory_weight = np.asarray(memory_weight, dtype=np.float32)
        self.memory_is_vote = np.zeros(len(self.memory_weight), bool) if memory_is_vote is None else np.asarray(memory_is_vote, bool)
        self.memory_is_correction = ~self.memory_is_vote & (self.memory_weight > 0)
        self.memory_tau = self._reach_of(params)
        self.docs = sorted(set(memory_doc))
        index = {d: i for i, d in enumerate(self.docs)}
        self.memory_doc = np.asarray([index[d] for d in memory_doc], dtype=np.int64)
        # A passage whose id is PASSAGE_PREFIX + n is a document of its own (a correction's text
        # that cites nothing); one with a real document's id is that document's corrected text
        # (an annotation), shown instead of its best chunk where the correction reaches.
        self.passages: dict[str, tuple[int, CorrectionPassage]] = {}
        self.annotations: dict[str, list[tuple[int, CorrectionPassage]]] = {}
        for row, passage in enumerate(passages or []):
            if passage.doc_id.startswith(PASSAGE_PREFIX):
                self.passages[passage.doc_id] = (row, passage)
            else:
                self.annotations.setdefault(passage.doc_id, []).append((row, passage))
        self.passage_vectors = passage_vectors
        self.adapter = adapter
        self._last = threading.local()  # the last question's products, per thread (_per_question)
        # Products that do not depend on `params` (similarities, title scores): shared with the
        # copies `with_params` makes, so scoring several settings costs one product per question.
        self._shared = threading.local()
        self.query_encoder = query_encoder
        self.encoder_blend = float(encoder_blend)
        self.encoder_reach = float(encoder_reach)
        self.encoder_title_margin = params.title_margin if encoder_title_margin is None else float(encoder_title_margin)
        # Every document's title, to tell whether a remembered question or another document's
        # title describes a new question better (see `explained`); none: every memory counts.
        self.title_docs: list[str] = []
        self.title_texts: list[str] = []
        self.title_vectors: np.ndarray | None = None
        uses_titles = min(params.title_margin, self.encoder_title_margin) < 2
        if uses_titles and title_docs and title_vectors is not None and len(title_docs) >= 2:
            self._set_titles(list(title_docs), np.asarray(title_vectors, dtype=np.float32), title_texts)

    def _set_titles(self, docs: list[str], vectors: np.ndarray, texts: list[str] | None) -> None:
        self.title_docs, self.title_vectors = docs, vectors
        self.title_texts = list(texts) if texts is not None and len(texts) == len(docs) else []
        where = {d: i for i, d in enumerate(docs)}
        doc_title = np.asarray([where.get(d, -1) for d in self.docs], dtype=np.int64)
        self.memory_title = doc_title[self.memory_doc]

    def with_titles(self, titles: dict[str, str], encode: Callable[[list[str]], np.ndarray]) -> "LearnedTuning":
        """This tuning with the knowledge base's titles as they are now, instead of the snapshot
        taken when the version was learned.

        Documents ingested after that snapshot would otherwise be invisible to the title rule: a
        question about a new entry, which the new entry's title describes better than any
        remembered question, would still be pulled to an older entry by feedback on a similar
        question. The learned part (memories, weights, encoder) is the version's and unchanged;
        only titles that are new or changed are embedded (`encode`: the base model, as the
        snapshot was). Returns `self` when the titles are the snapshot's or the rule is off.
        """
        current = {d: t for d, t in titles.items() if t.strip()}
        if self.title_vectors is None or len(current) < 2:
            return self
        known = dict(zip(self.title_docs, self.title_texts))
        if known == current:
            return self
        docs = sorted(current)
        kept = {(d, t): self.title_vectors[i] for i, (d, t) in enumerate(zip(self.title_docs, self.title_texts))}
        missing = list(dict.fromkeys(current[d] for d in docs if (d, current[d]) not in kept))
        made = dict(zip(missing, np.asarray(encode(missing), dtype=np.float32))) if missing else {}
        vectors = np.stack([kept[(d, current[d])] if (d, current[d]) in kept else made[current[d]] for d in docs])
        fresh = copy.copy(self)
        fresh._last = threading.local()  # the title test's memo belongs to the old titles
        fresh._shared = threading.local()
        fresh._set_titles(docs, vectors, [current[d] for d in docs])
        return fresh

    def with_params(self, params: MemoryParams) -> "LearnedTuning":
        """The same memories under other reach and strength settings, sharing this tuning's
        per-question products (similarities to the remembered questions and the titles), so
        calibration scores many settings at the price of one. Title vectors must already be set
        when `params` uses the title rule (a margin below 2); a margin of 2 turns it off."""
        fresh = copy.copy(self)
        fresh.params = params
        fresh.memory_tau = self._reach_of(params)
        fresh._last = threading.local()
        return fresh

    def _reach_of(self, params: MemoryParams) -> np.ndarray:
        """Per memory, the τ its kind reaches under `params`: 👎, 👍 or correction."""
        return np.where(
            self.memory_weight < 0, params.tau_negative, np.where(self.memory_is_vote, params.tau_vote, params.tau)
        ).astype(np.float32)

    def with_encoder_reach(self, reach: float, title_margin: float | None = None) -> "LearnedTuning":
        """The same tuning with the tuned encoder used for other questions: `reach` the centred
        cosine a question needs to some remembered question (0 or below: every question), and
        the title rule's margin for it (2: off; None: unchanged). What `askloop eval --diagnose`
        tries, to show what the encoder's limits cost on a team's own data."""
        fresh = copy.copy(self)
        fresh.encoder_reach = float(reach)
        if title_margin is not None:
            fresh.encoder_title_margin = float(title_margin)
        fresh._last = threading.local()
        return fresh

    def _centred(self, vectors: np.ndarray) -> np.ndarray:
        if self.center is None or vectors.size == 0:
            return vectors
        shifted = vectors - self.center
        norms = np.linalg.norm(shifted, axis=-1, keepdims=True)
        return shifted / np.maximum(norms, 1e-6)

    # -- the core: one matrix product per question ------------------------------------------------
    def _per_question(self, name: str, query: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """`compute(query)`, kept per thread for the last question asked (read-only).

        One search asks each hook about the same question (the encoder's reach, then the
        adjustments and pins for candidates, passages and the ranking), so every product with
        the remembered questions or the titles is computed once per question.
        """
        query = np.asarray(query, dtype=np.float32)
        key = query.tobytes()
        prepared = getattr(self._shared, "prepared", None)
        if prepared is not None and name in prepared and key in prepared[name]:
            return prepared[name][key]
        memo = self._shared if name in _SHARED else self._last
        kept = getattr(memo, name, None)
        if kept is not None and kept[0] == key:
            return kept[1]
        value = compute(query)
        value.flags.writeable = False
        setattr(memo, name, (key, value))
        return value

    def prepare(self, queries: np.ndarray) -> None:
        """Compute the similarities of many questions to every remembered question in one matrix
        product each (scoring many questions, as calibration does, instead of one product per
        question); kept, for this thread, until the next `prepare`, and shared with the copies
        `with_params` makes."""
        queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
        keys = [q.tobytes() for q in queries]
        centred = self._centred(queries) @ self.questions.T if len(self.questions) else np.zeros((len(queries), 0))
        raw = queries @ self.raw_questions.T if len(self.raw_questions) else np.zeros((len(queries), 0))
        tables: dict[str, dict[bytes, np.ndarray]] = {"centred": {}, "raw": {}}
        for key, c, r in zip(keys, centred.astype(np.float32), raw.astype(np.float32)):
            c.flags.writeable = False
            r.flags.writeable = False
            tables["centred"][key], tables["raw"][key] = c, r
        self._shared.prepared = tables

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Centred cosine between this question and every remembered question (read-only)."""
        if len(self.questions) == 0:
            return np.zeros(0, dtype=np.float32)
        return self._per_question("centred", query, lambda q: self.questions @ self._centred(q))

    def raw_similarities(self, query: np.ndarray) -> np.ndarray:
        """Raw cosine between this question and every remembered question (read-only)."""
        return self._per_question("raw", query, lambda q: self.raw_questions @ q)

    def explained(self, query: np.ndarray) -> np.ndarray | None:
        """Per memory: does its remembered question describe this question at least as well
        (raw cosine, less `title_margin`) as the title of every *other* document does? None
        when the tuning carries no titles (every memory counts).

        Feedback generalises by similarity, so it also reaches the neighbouring entries of a
        knowledge base: a correction that taught "VPN on my phone?" → the mobile guide would
        pull "VPN on my laptop?" away from the laptop guide. A question that another document's
        title describes better than the remembered question belongs to that document's need,
        however near the two questions sit; the memory leaves it alone, and so does the tuned
        encoder. The memory's own document never counts against it.
        """
        if self.title_vectors is None or len(self.memory_weight) == 0 or self.params.title_margin >= 2:
            return None
        return self._per_question("explained", query, self._explained)

    def _encoder_explained(self, query: np.ndarray) -> np.ndarray | None:
        """`explained`, with the encoder's own title margin (see `__init__`)."""
        if self.title_vectors is None or len(self.memory_weight) == 0 or self.encoder_title_margin >= 2:
            return None
        if self.encoder_title_margin == self.params.title_margin:
            return self.explained(query)
        other = self._per_question("best_other_title", query, self._best_other_title)
        return self.raw_similarities(query)[self.memory_question] >= other - self.encoder_title_margin

    def _explained(self, query: np.ndarray) -> np.ndarray:
        other = self._per_question("best_other_title", query, self._best_other_title)
        remembered = self.raw_similarities(query)[self.memory_question]
        return remembered >= other - self.params.title_margin

    def _best_other_title(self, query: np.ndarray) -> np.ndarray:
        """Per memory: the best raw cosine of the question with the title of any document
        other than the memory's own."""
        assert self.title_vectors is not None
        titles = self.title_vectors @ query
        first, second = np.argsort(-titles)[:2]
        return np.where(self.memory_title == first, titles[second], titles[first]).astype(np.float32)

    def adjustments(self, query: np.ndarray) -> dict[str, float]:
        """Bounded adjustment per document (in spread units) for this question; zeros omitted."""
        if len(self.memory_weight) == 0:
            return {}
        p = self.params
        similarity = self._per_question("memory_centred", query, lambda q: self.similarities(q)[self.memory_question])
        near = np.flatnonzero(similarity > self.memory_tau)  # the kernel is 0 for every other memory
        explained = self.explained(query)
        if explained is not None:
            near = near[explained[near]]
        if not len(near):
            return {}
        contributions = kernel(similarity[near], self.memory_tau[near], p.power) * self.memory_weight[near]
        if not np.any(contributions):
            return {}
        totals = np.bincount(self.memory_doc[near], weights=contributions, minlength=len(self.docs))
        capped = bounded(p.scale * totals, p.cap)
        return {self.docs[i]: float(capped[i]) for i in np.flatnonzero(capped)}

    def pinned(self, query: np.ndarray) -> dict[str, float]:
        """Documents of approved corrections made on a near-repeat of this question → similarity."""
        if not np.any(self.memory_is_correction) or len(self.raw_questions) == 0:
            return {}
        similarity = self.raw_similarities(query)[self.memory_question]
        chosen = np.flatnonzero(self.memory_is_correction & (similarity >= self.params.pin_similarity))
        pins: dict[str, float] = {}
        for i in chosen[np.argsort(-similarity[chosen])]:
            pins.setdefault(self.docs[self.memory_doc[i]], float(similarity[i]))
        return pins

    def _within_reach(self, query: np.ndarray) -> bool:
        if self.encoder_reach <= 0:
            return True
        similarities = self.similarities(query)
        if not len(similarities):
            return False
        explained = self._encoder_explained(query)
        if explained is None:
            return float(similarities.max()) >= self.encoder_reach
        near = similarities[self.memory_question] >= self.encoder_reach
        return bool(np.any(near & explained & (self.memory_weight > 0)))

    def search_query(self, question: str, query: np.ndarray) -> np.ndarray:
        if self.query_encoder is not None and self._within_reach(query):
            tuned = self.query_encoder().encode([question])[0]
            if self.encoder_blend >= 1.0:
                return tuned
            mixed = (1.0 - self.encoder_blend) * np.asarray(query, dtype=np.float32) + self.encoder_blend * tuned
            return _unit(mixed).astype(np.float32)
        if self.adapter is None:
            return query
        return _unit(np.asarray(query, dtype=np.float32) @ self.adapter).astype(np.float32)

    def extra_doc_ids(self, query: np.ndarray) -> list[str]:
        """Documents that corrections (or strong votes) tie to questions like this one."""
        p = self.params
        wanted = [
            (a, d)
            for d, a in self.adjustments(query).items()
            if a >= p.candidate_threshold and not d.startswith(PASSAGE_PREFIX)
        ]
        chosen = [d for _, d in sorted(wanted, reverse=True)[: p.max_extra]]
        pins = [d for d in self.pinned(query) if not d.startswith(PASSAGE_PREFIX)]
        return list(dict.fromkeys(pins + chosen))

    def extra_hits(self, query: np.ndarray) -> list[Hit]:
        if not self.passages or self.passage_vectors is None:
            return []
        p = self.params
        adjustments = self.adjustments(query)
        pins = self.pinned(query)
        hits = []
        similarities = self.passage_vectors @ np.asarray(query, dtype=np.float32)
        for doc_id, (row, passage) in self.passages.items():
            if adjustments.get(doc_id, 0.0) < p.candidate_threshold and doc_id not in pins:
                continue
            similarity = similarities[row]
            hits.append(
                Hit(
                    doc_id=doc_id,
                    title=passage.title,
                    source=f"correction #{passage.correction_id}"
                    if passage.correction_id is not None
                    else "correction",
                    score=float(similarity),
                    passage=passage.text,
                    chunk_id=doc_id,
                    base_score=float(similarity),
                    reasons=(f"corrected answer to “{passage.question}”",),
                )
            )
        return hits

    def rerank(self, query: np.ndarray, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        adjustments = self.adjustments(query)
        if not adjustments:
            return sorted(hits, key=lambda h: h.score, reverse=True)
        spread = spread_of(np.array([h.score for h in hits]), self.params.min_spread)
        out = []
        for hit in hits:
            a = adjustments.get(hit.doc_id, 0.0)
            if a == 0.0:
                out.append(hit)
                continue
            reason = f"feedback {'+' if a > 0 else ''}{a:.2f}σ"
            out.append(hit.rescored(hit.score + a * spread, reason))
        pins = self.pinned(query)
        if self.annotations:
            out = [self._annotated(query, hit, adjustments, pins) for hit in out]
        return _pin_first(out, pins)

    def _annotated(self, query: np.ndarray, hit: Hit, adjustments: dict[str, float], pins: dict[str, float]) -> Hit:
        """`hit` with its document's corrected text as the passage, when a correction that gave
        text reaches this question (the document pinned, or raised past the candidate threshold);
        of several, the text closest to the question."""
        notes = self.annotations.get(hit.doc_id)
        if not notes or self.passage_vectors is None:
            return hit
        if hit.doc_id not in pins and adjustments.get(hit.doc_id, 0.0) < self.params.candidate_threshold:
            return hit
        rows = [row for row, _ in notes]
        similarities = self.passage_vectors[rows] @ np.asarray(query, dtype=np.float32)
        passage = notes[int(np.argmax(similarities))][1]
        label = f"correction #{passage.correction_id}" if passage.correction_id is not None else "a correction"
        return replace(hit, passage=passage.text, reasons=hit.reasons + (f"text from {label}",))


def _pin_first(hits: list[Hit], pins: dict[str, float]) -> list[Hit]:
    """Pinned hits lead, in pin order, scored at least their question match; the rest follow."""
    ranked = sorted(hits, key=lambda h: h.score, reverse=True)
    if not pins:
        return ranked
    by_doc = {h.doc_id: h for h in ranked}
    rest = [h for h in ranked if h.doc_id not in pins]
    floor = rest[0].score if rest else float("-inf")
    pinned = []
    for doc_id, similarity in pins.items():
        hit = by_doc.get(doc_id)
        if hit is None:
            continue
        score = max(hit.score, similarity, floor)
        pinned.append(hit.rescored(score, f"approved correction for a question {similarity:.2f} alike"))
    # Keep the scores ordered: each pinned hit at least the next one's score.
    for i in range(len(pinned) - 2, -1, -1):
        if pinned[i].score < pinned[i + 1].score:
            pinned[i] = replace(pinned[i], score=pinned[i + 1].score)
    return pinned + rest


class DocBoostTuning(NoTuning):
    """One boost per document, whatever the question (a baseline, not what askloop does).

    The multiplier 2·sigmoid(boost / 3) is 1 with no votes, tends to 2 with many upvotes and to
    0 with many downvotes, as in the per-document boosts of some open-source assistants.
    """

    def __init__(self, version: int | None, boosts: dict[str, float]) -> None:
        super().__init__(version)
        self.boosts = dict(boosts)

    @staticmethod
    def multiplier(boost: float) -> float:
        return 2.0 / (1.0 + math.exp(-boost / 3.0))

    def rerank(self, query: np.ndarray, hits: list[Hit]) -> list[Hit]:
        out = []
        for hit in hits:
            boost = self.boosts.get(hit.doc_id)
            if boost:
                out.append(hit.rescored(hit.score * self.multiplier(boost), f"doc boost {boost:+g}"))
            else:
                out.append(hit)
        return sorted(out, key=lambda h: h.score, reverse=True)
