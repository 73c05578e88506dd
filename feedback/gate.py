"""The evaluation gate: no proposal reaches a moderator unmeasured.

A proposal is replayed against what users get now (the active version, or the base index):
* the golden set — questions with known good documents (every approved correction that cites a
  document adds one; teams add their own with `askloop golden add`): nDCG@10, MRR@10,
  Recall@10 and hit@1 before and after, and per question whether it got worse;
* recent answered questions — no judgements, so the gate reports how many would now get a
  different top source (churn), for the moderator to weigh.
The proposal fails when any golden question's nDCG@10 drops by more than `tolerance`; a failing
proposal can only be approved with an explicit, audited override (enforced by the store).
With no golden questions the gate has nothing to judge by and says so (`golden.count` 0).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from feedback.metrics import mean_metrics, per_query
from feedback.store import FeedbackStore
from retrieval.embeddings import Embedder
from retrieval.tuning_payload import tuning_from_payload
from retrieval.search import KnowledgeBase
from retrieval.tuning import NoTuning, Tuning

DEFAULT_TOLERANCE = 0.05
DEFAULT_RECENT = 200
GATE_K = 10


@dataclass(frozen=True)
class GateConfig:
    tolerance: float = DEFAULT_TOLERANCE  # largest allowed nDCG@10 drop of any golden question
    recent: int = DEFAULT_RECENT  # recent answered questions replayed for churn


@dataclass
class GateResult:
    passed: bool
    evaluation: dict[str, Any]


def _rankings(
    kb: KnowledgeBase, questions: Sequence[str], vectors: np.ndarray, tuning: Tuning
) -> list[list[str]]:
    # one batch for the questions a tuned query encoder re-encodes, not one model call each
    return [[h.doc_id for h in result.hits] for result in kb.search_many(questions, GATE_K, tuning, vectors)]


def current_tuning(store: FeedbackStore, embedder: Embedder | None = None) -> Tuning:
    active = store.proposals.active_version()
    if active is None:
        return NoTuning()
    return tuning_from_payload(active.payload, active.number, embedder)


def evaluate_payload(
    store: FeedbackStore,
    kb: KnowledgeBase,
    payload: dict[str, Any],
    config: GateConfig | None = None,
    *,
    vectors: dict[str, np.ndarray] | None = None,
) -> GateResult:
    """Replay golden and recent questions without and with `payload`; nothing is written."""
    config = config or GateConfig()
    started = time.perf_counter()
    before_tuning = current_tuning(store, kb.embedder)
    after_tuning = tuning_from_payload(payload, None, kb.embedder)
    cache = vectors if vectors is not None else {}

    def embed(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for text, vector in zip(missing, kb.embedder.encode(missing)):
                cache[text] = vector
        if not texts:
            return np.zeros((0, kb.embedder.dimension), dtype=np.float32)
        return np.stack([cache[t] for t in texts])

    golden = store.golden.all()
    g_questions = [g.question for g in golden]
    g_vectors = embed(g_questions)
    qrels = {str(g.id): {d: 1.0 for d in g.doc_ids} for g in golden}
    ids = [str(g.id) for g in golden]
    before = per_query(qrels, dict(zip(ids, _rankings(kb, g_questions, g_vectors, before_tuning))))
    after = per_query(qrels, dict(zip(ids, _rankings(kb, g_questions, g_vectors, after_tuning))))
    worse, better = [], 0
    for g in golden:
        key = str(g.id)
        b, a = before["ndcg@10"].get(key, 0.0), after["ndcg@10"].get(key, 0.0)
        if a < b - config.tolerance:
            worse.append({"golden_id": g.id, "question": g.question, "before": round(b, 4), "after": round(a, 4)})
        elif a > b + 1e-9:
            better += 1

    recent = store.answers.recent(limit=config.recent) if config.recent else []
    r_questions = [a.question for a in recent]
    r_vectors = embed(r_questions)
    r_before = _rankings(kb, r_questions, r_vectors, before_tuning)
    r_after = _rankings(kb, r_questions, r_vectors, after_tuning)
    changed = sum(1 for b, a in zip(r_before, r_after) if (b[:1] != a[:1]))

    passed = not worse
    evaluation = {
        "passed": passed,
        "tolerance": config.tolerance,
        "golden": {
            "count": len(golden),
            "before": mean_metrics(before),
            "after": mean_metrics(after),
            "better": better,
            "worse": worse,
        },
        "recent": {
            "count": len(recent),
            "top_changed": changed,
            "top_changed_share": round(changed / len(recent), 4) if recent else 0.0,
        },
        "compared_with": "active version" if not isinstance(before_tuning, NoTuning) else "base index",
        "seconds": round(time.perf_counter() - started, 3),
    }
    return GateResult(passed, evaluation)


def render_evaluation(evaluation: dict[str, Any]) -> str:
    """A few lines for the proposal's reviewer (empty evaluation: not evaluated yet)."""
    if not evaluation:
        return "not evaluated yet"
    if not isinstance(evaluation.get("golden"), dict) or not isinstance(evaluation.get("recent"), dict):
        # not the gate's own shape (written by another tool): show what is there
        return "; ".join(f"{k}: {v}" for k, v in list(evaluation.items())[:12])
    golden = evaluation["golden"]
    b, a = golden["before"], golden["after"]
    verdict = "PASSED" if evaluation["passed"] else "FAILING"
    if golden["count"]:
        first = (
            f"{verdict} — golden set: {golden['count']} question(s); nDCG@10 {b['ndcg@10']:.3f} → {a['ndcg@10']:.3f}, "
            f"hit@1 {b['hit@1']:.3f} → {a['hit@1']:.3f}; {golden['better']} better, {len(golden['worse'])} worse "
            f"than the tolerance ({evaluation['tolerance']})"
        )
    else:
        first = (
            f"{verdict}, but unchecked — there are no golden questions to compare against yet (approved "
            "corrections that cite a document add them; a team can add its own)"
        )
    lines = [
        first,
        f"recent questions: {evaluation['recent']['top_changed']} of {evaluation['recent']['count']} would get "
        f"a different top source (compared with the {evaluation['compared_with']})",
    ]
    for item in golden["worse"][:5]:
        lines.append(f"  worse: “{item['question'][:70]}” nDCG@10 {item['before']:.2f} → {item['after']:.2f}")
    return "\n".join(lines)
