"""Tuning the query encoder itself from validated (question, document) pairs.

Where the memories (`retrieval.learned`) carry feedback to questions that *look* like the one it
was given on, a tuned encoder learns *which words point to which documents*, so it also helps a
paraphrase that shares no phrasing with any remembered question. Training adds a low-rank (LoRA)
update to the embedding model and fits it so each validated question scores its document above
every other document, documents being scored by their best stored chunk, exactly as search
scores them. Chunk vectors are never re-embedded.

Settings were chosen on dev splits of feedback data only (`benchmarks/learning_dev.py`). Every
variant tried there gained on paraphrases and cost a little on some needs without feedback; the
distillation anchors, a half-and-half blend of the base and tuned vectors, and a reach limited to
questions near remembered ones cost the least (docs/learning.md has the table).

Like the memories, the training set is bounded: each user and each document contributes at most a
fixed number of pairs, so no one person's votes, nor one popular document, shape the encoder.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from feedback.adapter import ChunkVectors
from retrieval.learned import PASSAGE_PREFIX
from retrieval.query_encoder import LoraShape, lora_state, with_lora


@dataclass(frozen=True)
class EncoderTraining:
    enabled: bool = True  # ASKLOOP_TUNE_QUERY_ENCODER
    min_pairs: int = 32  # validated pairs before the encoder is tuned at all
    max_pairs: int = 500  # bounds learning time (about 30 s on 2 cores); the heaviest pairs first
    user_pairs: int = 50  # at most this many pairs from one user's feedback
    doc_pairs: int = 100  # at most this many pairs citing one document
    rank: int = 8
    alpha: float = 16.0
    learning_rate: float = 1e-3
    epochs: int = 3
    batch_size: int = 16
    temperature: float = 0.05
    negatives_per_question: int = 200  # hardest other chunks kept per question on large stores
    # Anchors: document titles, this many per feedback pair at most, trained alongside the
    # feedback to score the documents as the base model does (a distillation term of weight
    # `distill`): the update may move the taught questions, not what other questions retrieve.
    anchors: float = 1.0
    distill: float = 5.0
    # The vector searched with: (1 - blend)·base + blend·tuned, renormalised (1 = the tuned one):
    # keeping part of the base model's view in every search lowered the harm on dev splits; 0.7
    # loses no more there than 0.5 did and gains more, most on FAQ-like sets (docs/learning.md).
    blend: float = 0.7
    # Used only for questions whose centred cosine to some remembered question reaches this
    # (0: for every question); the others search with the base vector.
    reach: float = 0.45  # as far as an approved correction reaches (MemoryParams.tau)
    # ...through a memory that counts for the question (see MemoryParams.title_margin).
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def shape(self) -> LoraShape:
        return LoraShape(rank=self.rank, alpha=self.alpha)


@dataclass
class EncoderResult:
    weights: dict[str, np.ndarray] | None
    note: str
    stats: dict[str, Any] = field(default_factory=dict)


def training_pairs(memories: list[Any], limit: int, user_limit: int = 10**9, doc_limit: int = 10**9) -> list[tuple[str, str]]:
    """Distinct (question, stored document) pairs that feedback validated, heaviest first, with
    at most `user_limit` from one user and `doc_limit` citing one document.

    👎 memories are left to the memory kernel: "not this document" says nothing about which
    document the question wanted. Corrected free text is not a stored document, so it is out too.
    """
    weight: dict[tuple[str, str], float] = {}
    users: dict[tuple[str, str], str] = {}
    for m in memories:
        if m.weight > 0 and not m.doc_id.startswith(PASSAGE_PREFIX):
            weight[(m.question, m.doc_id)] = weight.get((m.question, m.doc_id), 0.0) + float(m.weight)
            users.setdefault((m.question, m.doc_id), m.user)
    per_user: dict[str, int] = {}
    per_doc: dict[str, int] = {}
    chosen: list[tuple[str, str]] = []
    for pair in sorted(weight, key=lambda pair: (-weight[pair], pair)):
        user, doc = users[pair], pair[1]
        if per_user.get(user, 0) >= user_limit or per_doc.get(doc, 0) >= doc_limit:
            continue
        per_user[user] = per_user.get(user, 0) + 1
        per_doc[doc] = per_doc.get(doc, 0) + 1
        chosen.append(pair)
        if len(chosen) == limit:
            break
    return chosen


def anchor_pairs(titles: dict[str, str], taught: list[tuple[str, str]], count: int, seed: int) -> list[tuple[str, str]]:
    """(title, document) pairs, a seeded sample, none repeating a taught question."""
    questions = {q for q, _ in taught}
    choices = sorted((title, doc) for doc, title in titles.items() if title not in questions)
    return random.Random(seed).sample(choices, min(count, len(choices)))


def _candidate_chunks(
    questions: np.ndarray, positives: list[str], chunk_docs: list[str], chunks: np.ndarray, per_question: int
) -> np.ndarray:
    """Chunk indices to score against: every chunk of a taught document plus each question's
    hardest competitors. On a small store that is every chunk."""
    if len(chunk_docs) <= per_question * 4:
        return np.arange(len(chunk_docs))
    wanted = set(positives)
    keep = {i for i, d in enumerate(chunk_docs) if d in wanted}
    for start in range(0, len(questions), 256):
        scores = questions[start : start + 256] @ chunks.T
        top = np.argpartition(-scores, per_question, axis=1)[:, :per_question]
        keep.update(int(i) for i in top.ravel())
    return np.array(sorted(keep))


def _hit_rate(model: Any, questions: list[str], targets: list[int], chunks: Any, columns: Any, n_docs: int) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        vectors = model.encode(questions, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
        scores = _doc_scores(vectors @ chunks.T, columns, n_docs)
    return float((scores.argmax(dim=1) == torch.tensor(targets)).float().mean())


def _doc_scores(chunk_scores: Any, columns: Any, n_docs: int) -> Any:
    import torch

    rows = chunk_scores.shape[0]
    out = torch.full((rows, n_docs), -1e4, dtype=chunk_scores.dtype)
    return out.scatter_reduce(1, columns.expand(rows, -1), chunk_scores, reduce="amax")


def train_query_encoder(
    memories: list[Any],
    vectors: dict[str, np.ndarray],
    base_model: Any,
    chunk_vectors: Callable[[], ChunkVectors] | None,
    config: EncoderTraining,
    titles: Callable[[], dict[str, str]] | None = None,
    load_base: Callable[[], Any] | None = None,
) -> EncoderResult:
    """LoRA weights for the query encoder, or None with the reason (too few pairs, no model).

    `load_base`, instead of `base_model`: loads the model only once there are enough pairs to
    train on (loading torch costs seconds, which a proposal from a few votes should not pay)."""
    if not config.enabled:
        return EncoderResult(None, "query encoder unchanged: tuning it is turned off (ASKLOOP_TUNE_QUERY_ENCODER)")
    pairs = training_pairs(memories, config.max_pairs, config.user_pairs, config.doc_pairs)
    if len(pairs) < config.min_pairs:
        return EncoderResult(None, f"query encoder unchanged: {len(pairs)} validated pair(s), {config.min_pairs} needed")
    if base_model is None and load_base is not None and chunk_vectors is not None:
        base_model = load_base()
    if base_model is None or chunk_vectors is None:
        return EncoderResult(None, "query encoder unchanged: the model or the document vectors are not available")
    chunk_docs, chunks = chunk_vectors()
    stored = set(chunk_docs)
    pairs = [(q, d) for q, d in pairs if d in stored]
    if len(pairs) < config.min_pairs:
        return EncoderResult(None, f"query encoder unchanged: {len(pairs)} pair(s) cite documents still in the store")

    import torch

    taught = len(pairs)
    if titles is not None and config.anchors > 0:
        known = {d: t for d, t in titles().items() if d in stored}
        pairs = pairs + anchor_pairs(known, pairs, int(config.anchors * taught), config.seed)
    questions = [q for q, _ in pairs]
    missing = [q for q in questions if q not in vectors]  # the anchors' titles
    if missing:
        for q, v in zip(missing, base_model.encode(missing, normalize_embeddings=True, show_progress_bar=False)):
            vectors[q] = np.asarray(v, dtype=np.float32)
    base_vectors = np.stack([np.asarray(vectors[q], dtype=np.float32) for q in questions])
    keep = _candidate_chunks(base_vectors, [d for _, d in pairs], chunk_docs, chunks, config.negatives_per_question)
    kept_docs = [chunk_docs[i] for i in keep]
    docs = sorted(set(kept_docs))
    index = {d: i for i, d in enumerate(docs)}
    columns = torch.tensor([index[d] for d in kept_docs])
    chunk_matrix = torch.from_numpy(np.ascontiguousarray(chunks[keep], dtype=np.float32))
    targets = [index[d] for _, d in pairs]

    torch.manual_seed(config.seed)
    model = with_lora(base_model, config.shape)
    before = _hit_rate(model, questions[:taught], targets[:taught], chunk_matrix, columns, len(docs))
    anchors = questions[taught:]
    with torch.no_grad():  # what the base model makes of each anchor: the update must keep it
        anchor_vectors = torch.from_numpy(base_vectors[taught:])
        anchor_targets = torch.softmax(_doc_scores(anchor_vectors @ chunk_matrix.T, columns, len(docs)) / config.temperature, dim=1)
    trainable = [p for n, p in model.named_parameters() if "lora_" in n]
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "lora_" in name
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate)

    def scores_of(texts: list[str]) -> Any:
        embedded = torch.nn.functional.normalize(model(model.preprocess(texts))["sentence_embedding"], dim=-1)
        return _doc_scores(embedded @ chunk_matrix.T, columns, len(docs)) / config.temperature

    order, anchor_order = list(range(taught)), list(range(len(anchors)))
    shuffle = random.Random(config.seed)
    step = 0
    for _ in range(config.epochs):
        model.train()
        shuffle.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = torch.nn.functional.cross_entropy(
                scores_of([questions[i] for i in batch]), torch.tensor([targets[i] for i in batch])
            )
            if anchors:
                if step % max(1, len(anchors) // config.batch_size) == 0:
                    shuffle.shuffle(anchor_order)
                offset = (step * config.batch_size) % len(anchors)
                chosen = (anchor_order * 2)[offset : offset + config.batch_size]
                log_probs = torch.log_softmax(scores_of([anchors[i] for i in chosen]), dim=1)
                loss = loss + config.distill * torch.nn.functional.kl_div(
                    log_probs, anchor_targets[chosen], reduction="batchmean"
                )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
    after = _hit_rate(model, questions[:taught], targets[:taught], chunk_matrix, columns, len(docs))
    anchor_count = len(pairs) - taught
    stats = {"pairs": taught, "anchors": anchor_count, "taught_hit1_before": round(before, 4),
             "taught_hit1_after": round(after, 4)}
    note = (
        f"query encoder tuned on {taught} validated pair(s) (and {anchor_count} title anchor(s)): their "
        f"documents rank first {before:.0%} → {after:.0%} of the time"
    )
    return EncoderResult(lora_state(model), note, stats)
