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

import base64
import copy
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.query_encoder import LoraShape, TunedEncoder, cached_encoder, tuned_query_encoder
from retrieval.tuning import NoTuning, Tuning
from retrieval.types import Hit

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder

PAYLOAD_FORMAT = 1
KIND_ASKLOOP = "askloop"
KIND_DOC_BOOST = "doc-boost"
PASSAGE_PREFIX = "correction:"


class PayloadError(ValueError):
    """A tuning payload that cannot be decoded (wrong kind, format, shapes)."""


# -- compact vectors in JSON ----------------------------------------------------------------------
def encode_matrix(matrix: np.ndarray, dtype: str = "float16") -> dict[str, Any]:
    """A matrix as base64 of its raw bytes: ~4x smaller than JSON numbers, exact to float16."""
    array = np.ascontiguousarray(np.asarray(matrix, dtype=dtype))
    return {
        "dtype": dtype,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def decode_matrix(blob: dict[str, Any]) -> np.ndarray:
    try:
        raw = base64.b64decode(blob["data"])
        array = np.frombuffer(raw, dtype=np.dtype(blob["dtype"])).reshape(blob["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"malformed vector block in tuning payload: {exc}") from exc
    return array.astype(np.float32)


# -- the parameters every learned tuning carries (visible in each proposal) -------------------------
@dataclass(frozen=True)
class MemoryParams:
    """How strongly, and for which questions, a memory moves a document.

    kernel(s) = max(0, (s - tau) / (1 - tau)) ** power for the cosine s between the new question
    and the remembered one, both first centred on the remembered questions' mean (questions to
    one team share a topic, which pushes all their raw cosines up; centring removes it).
    A document's summed adjustment a becomes cap * tanh(scale * a / cap) spread units, where
    `spread` is the standard deviation of the candidates' base scores (at least `min_spread`).
    👎 memories use the stricter `tau_negative`: a rejection only repeats for near-repeats.
    These defaults are the safe starting point; the learning engine may move the reach, the
    title margin and the strength within fixed bounds when the team's own feedback shows, on
    held-out phrasings, that another setting ranks better (`feedback.calibration`). The values
    in force are recorded in every payload.
    """

    tau: float = 0.45
    tau_negative: float = 0.7  # 👎 memories: only for near-repeats of the question
    tau_vote: float = 0.65  # 👍 memories: a confirmation generalises less far than a correction
    power: float = 2.5
    cap: float = 3.0
    scale: float = 3.0
    min_spread: float = 0.02
    candidate_threshold: float = 0.3  # kernel above which a corrected document joins the candidates
    max_extra: int = 5
    # An approved correction is served first for a near-repeat of its question (raw cosine at or
    # above this), like an annotation reply: a spread-bounded boost cannot lift a source the
    # model scores far below the rest, and a moderator-approved fix must show for its question.
    pin_similarity: float = 0.9
    # A memory counts for a question (and gives the tuned encoder reach to it) only while the
    # remembered question describes it at least as well (raw cosine, less this margin) as the
    # title of every other document does; 2 turns the rule off. See `LearnedTuning.explained`.
    title_margin: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "MemoryParams":
        data = data or {}
        fields = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in fields:
                values[key] = int(value) if key == "max_extra" else float(value)
        return cls(**values)


# Per-question products that depend only on the memories and titles, never on `MemoryParams`.
_SHARED = frozenset({"centred", "raw", "memory_centred", "best_other_title"})


def kernel(similarity: np.ndarray, tau: float, power: float) -> np.ndarray:
    """0 below tau, rising to 1 for an identical question."""
    x = np.clip((np.asarray(similarity, dtype=np.float32) - tau) / max(1e-6, 1.0 - tau), 0.0, 1.0)
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
        is_vote = np.zeros(len(self.memory_weight), bool) if memory_is_vote is None else np.asarray(memory_is_vote, bool)
        self.memory_is_correction = ~is_vote & (self.memory_weight > 0)
        self.memory_tau = np.where(
            self.memory_weight < 0, params.tau_negative, np.where(is_vote, params.tau_vote, params.tau)
        ).astype(np.float32)
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
        is_vote = ~self.memory_is_correction & (self.memory_weight > 0)
        fresh.memory_tau = np.where(
            self.memory_weight < 0, params.tau_negative, np.where(is_vote, params.tau_vote, params.tau)
        ).astype(np.float32)
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
        tau = self.memory_tau[near]
        x = np.clip((similarity[near] - tau) / np.maximum(1e-6, 1.0 - tau), 0.0, 1.0)
        contributions = x**p.power * self.memory_weight[near]
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


# -- payload → Tuning (memoised per version: the bot calls this on every question) -----------------
def _decode_askloop(payload: dict[str, Any], version: int | None, embedder: "Embedder | None" = None) -> LearnedTuning:
    params = MemoryParams.from_dict(payload.get("params"))
    memories = payload.get("memories") or {}
    if memories.get("questions"):
        questions = decode_matrix(memories["questions"])
    else:
        questions = np.zeros((0, int(payload.get("dim", 0) or 0)), dtype=np.float32)
    memory_question = list(memories.get("question_index", []))
    memory_doc = [str(d) for d in memories.get("doc_ids", [])]
    memory_weight = list(memories.get("weights", []))
    if not (len(memory_question) == len(memory_doc) == len(memory_weight)):
        raise PayloadError("tuning payload: memory columns differ in length")
    if memory_question and max(memory_question) >= len(questions):
        raise PayloadError("tuning payload: a memory points past the question vectors")
    passages = [
        CorrectionPassage(
            doc_id=str(p["doc_id"]),
            title=str(p.get("title", "Correction")),
            text=str(p.get("text", "")),
            question=str(p.get("question", "")),
            correction_id=p.get("correction_id"),
        )
        for p in payload.get("passages", [])
    ]
    passage_vectors = decode_matrix(payload["passage_vectors"]) if passages else None
    adapter_blob = payload.get("adapter")
    adapter = decode_matrix(adapter_blob["matrix"]) if adapter_blob else None
    center = decode_matrix(payload["center"]) if payload.get("center") else None
    titles = payload.get("titles") or {}
    title_docs = [str(d) for d in titles.get("doc_ids", [])]
    title_vectors = decode_matrix(titles["vectors"]) if titles.get("vectors") else None
    if title_vectors is not None and (title_vectors.ndim != 2 or len(title_vectors) != len(title_docs)):
        raise PayloadError("tuning payload: title vectors and document ids differ in length")
    encoder_block = payload.get("query_encoder")
    return LearnedTuning(
        query_encoder=_encoder_factory(encoder_block, str(payload.get("id", "")), embedder) if encoder_block else None,
        encoder_blend=float((encoder_block or {}).get("blend", 1.0)),
        encoder_reach=float((encoder_block or {}).get("reach", 0.0)),
        encoder_title_margin=float((encoder_block or {})["title_margin"]) if "title_margin" in (encoder_block or {}) else None,
        center=center,
        version=version,
        params=params,
        questions=questions,
        memory_question=np.asarray(memory_question, dtype=np.int64),
        memory_doc=memory_doc,
        memory_weight=np.asarray(memory_weight, dtype=np.float32),
        memory_is_vote=np.array([r.startswith("a") for r in memories.get("refs", [])], bool)
        if len(memories.get("refs", [])) == len(memory_weight)
        else None,
        passages=passages,
        passage_vectors=passage_vectors,
        adapter=adapter,
        title_docs=title_docs,
        title_vectors=title_vectors,
        title_texts=[str(t) for t in titles.get("texts", [])] or None,
    )


def _encoder_factory(block: dict[str, Any], payload_id: str, embedder: "Embedder | None" = None) -> Callable[[], TunedEncoder]:
    """Checks the block and merges the model now, so a bad payload fails when decoded (the bot
    then serves the base index) rather than on some later question. The merged model is kept in a
    small cache and rebuilt on demand if it was evicted. It runs on `embedder`'s backend (default:
    the process's own embedder of that model); any precision of the same weights will do."""
    from retrieval.embeddings import loaded_embedder, same_weights

    try:
        shape = LoraShape(rank=int(block["rank"]), alpha=float(block["alpha"]), targets=tuple(block["targets"]))
        weights = {str(name): decode_matrix(blob) for name, blob in block["weights"].items()}
        model_name, model_id = str(block.get("model_name") or ""), str(block["model"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PayloadError(f"malformed query encoder in tuning payload: {exc}") from exc
    base = embedder if embedder is not None else loaded_embedder(model_name or None)
    if not same_weights(base.model_id, model_id):
        raise PayloadError(f"the tuned query encoder was made for {model_id}, not {base.model_id}")
    key = f"{payload_id or f'unversioned-{id(block)}'}:{base.model_id}:{base.backend}"

    def build() -> TunedEncoder:
        try:
            return tuned_query_encoder(base, shape, weights)
        except (ValueError, RuntimeError) as exc:  # weights that do not fit this model's layers
            raise PayloadError(f"the tuned query encoder does not fit {model_id}: {exc}") from exc

    def factory() -> TunedEncoder:
        return cached_encoder(key, build)

    factory()  # merged now (ONNX: exported too, once per version): weights that do not fit fail at decode time
    return factory


def _decode(payload: dict[str, Any], version: int | None, embedder: "Embedder | None" = None) -> Tuning:
    if not payload:
        return NoTuning(version)
    kind = payload.get("kind", KIND_ASKLOOP)
    if kind == KIND_ASKLOOP:
        return _decode_askloop(payload, version, embedder)
    if kind == KIND_DOC_BOOST:
        return DocBoostTuning(version, {str(k): float(v) for k, v in payload.get("boosts", {}).items()})
    if kind == "none":
        return NoTuning(version)
    raise PayloadError(f"unknown tuning kind {kind!r}")


_CACHE: "OrderedDict[tuple[int, str], Tuning]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def tuning_from_payload(
    payload: dict[str, Any] | None, version: int | None, embedder: "Embedder | None" = None
) -> Tuning:
    """The Tuning a version's payload describes; decoded once per (version, payload id, embedder).
    `embedder`: the one questions are embedded with (its backend runs a tuned query encoder).

    Versions are immutable, so a decoded version can be reused for every question. The payload's
    content hash (`id`, written by the learning engine) is part of the key because several
    feedback databases (say, one per evaluated strategy) each have their own version 1.
    """
    identity = str((payload or {}).get("id", ""))
    if version is None or not identity:
        return _decode(payload or {}, version, embedder)
    # The id leaves out the document titles (a snapshot of the knowledge base): their own id counts.
    encoder = f"{embedder.model_id}:{embedder.backend}" if embedder is not None else ""
    key = (version, f"{identity}:{((payload or {}).get('titles') or {}).get('id', '')}:{encoder}")
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    tuning = _decode(payload or {}, version, embedder)
    with _CACHE_LOCK:
        _CACHE[key] = tuning
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return tuning
