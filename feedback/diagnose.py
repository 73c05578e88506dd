"""`askloop eval --diagnose`: how much is left to gain after learning, and where it is.

An evaluation's figures say how good the engine is, not how good it could be. This looks at the
same run (the same simulated feedback, the askloop strategy's live version) and reports:

* the **nearest-feedback rule**: answer each test question with the document validated for the
  most similar feedback question (raw cosine of the question vectors), over the feedback
  questions that got a validated document: an approved correction's, or the top source of a
  counted 👍. It is the simplest use of feedback there is, and what "learning that generalises"
  has to beat on questions whose need got feedback;
* **plain search**, and the **ceiling** of any chooser between the two (right when either is);
* where the engine's **misses** fall: a rule kept a memory pointing at the right document from
  counting for a similar question (which rule: the title rule, a reach τ, a counted 👎, a pin for
  another document), the right document was not among the search's candidates at all (out of
  reach), it came second, or something else.

A miss is classified by the first of these that holds, in that order: a blocked memory is the
more specific cause (a correction the title rule blocked would also have made its document a
candidate).

Then **what the limits cost**: the same learned version with one limit loosened at a time — the
title rule off, the reach of 👍 and corrections 0.15 wider, the tuned query encoder used for
every question instead of only near remembered ones — and all three, each re-ranking every test
question, with the questions it gains and loses against the engine per part. The limits keep
feedback off the questions of needs nobody voted on; whether they also block gains on a team's
own data (a manual whose every page has a descriptive title, say) is what these rows show, and
the *without feedback* column is what loosening would cost. Nothing here is fitted or tuned: it
reads what the run did and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from feedback.calibration import Setting
from feedback.datasets import Dataset
from feedback.metrics import hit_at_1
from retrieval.learned import LearnedTuning
from retrieval.search import KnowledgeBase
from retrieval.tuning import Tuning


class Evaluation(Protocol):
    """What a finished `feedback.evaluation.Evaluation` holds that the diagnosis reads (a
    protocol, so the evaluation can call the diagnosis without the two importing each other)."""

    ds: Dataset
    kb: KnowledgeBase
    vectors: dict[str, np.ndarray]
    validated: list[tuple[str, str]]
    base_rankings: dict[str, list[str]]
    rankings: dict[str, dict[str, list[str]]]
    tunings: dict[str, Tuning]

    def rank(self, query_ids: Sequence[str], tuning: Tuning) -> dict[str, list[str]]: ...


STRATEGY = "askloop"
# Rules a memory can be blocked by (MemoryParams names), and the other places a miss can fall.
BLOCKED = ("title_margin", "tau", "tau_vote", "tau_negative", "pin_similarity")
PLACES = ("out_of_reach", "ranked_second", "other")
# The limits loosened one at a time, then together: (label, reach shift, title rule off, encoder
# for every question). The reach shift stays within calibration's bounds (`Setting.apply`).
LOOSER = (
    ("title rule off", 0.0, True, False),
    ("reach of 👍 and corrections −0.15", -0.15, False, False),
    ("tuned encoder for every question", 0.0, False, True),
    ("all three", -0.15, True, True),
)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def nearest_feedback(evaluation: Evaluation) -> dict[str, tuple[str, str]]:
    """Test question → (nearest validated feedback question, its validated document)."""
    validated = list(dict.fromkeys(evaluation.validated))  # a question validated twice counts once
    if not validated:
        return {}
    queries, vectors = evaluation.ds.queries, evaluation.vectors
    memory = _unit_rows(np.stack([vectors[queries[q]] for q, _ in validated]))
    out = {}
    for t in evaluation.ds.test:
        similarity = memory @ _unit_rows(np.asarray(vectors[queries[t]], dtype=np.float32))
        out[t] = validated[int(np.argmax(similarity))]
    return out


def _blocked_by(tuning: LearnedTuning, vector: np.ndarray, right: set[str]) -> str | None:
    """The rule that kept a memory pointing at a right document from counting, if one did.

    Similar question: one within the memory's reach (kernel above 0), or — for the reach rules
    themselves — the most similar question (raw cosine) among the positive memories, i.e. the
    validated feedback the nearest-feedback rule would answer with."""
    if len(tuning.memory_weight) == 0:
        return None
    index = tuning.memory_question
    centred = tuning.similarities(vector)[index]
    raw = tuning.raw_similarities(vector)[index]
    explained = tuning.explained(vector)
    counts = np.ones(len(index), bool) if explained is None else np.asarray(explained, bool)
    docs = np.asarray([tuning.docs[i] for i in tuning.memory_doc], dtype=object)
    on_right = np.asarray([d in right for d in docs], bool)
    weight = tuning.memory_weight
    reached = centred > tuning.memory_tau
    if np.any(on_right & (weight < 0) & reached & counts):
        return "tau_negative"  # a 👎 on the right document (made on a near-repeat) counted here
    if np.any(on_right & (weight > 0) & reached & ~counts):
        return "title_margin"  # within reach, but another document's title describes it better
    pins = tuning.pinned(vector)
    if pins and next(iter(pins)) not in right:
        return "pin_similarity"  # a correction for another document, made on a near-repeat, was served first
    positive = weight > 0
    if np.any(positive):
        nearest = positive & (raw >= raw[positive].max() - 1e-6)  # the most similar validated question
        missed = nearest & on_right & ~reached
        if np.any(missed & tuning.memory_is_correction):
            return "tau"  # an approved correction on the nearest question, beyond a correction's reach
        if np.any(missed):
            return "tau_vote"  # a 👍 on the nearest question, beyond a confirmation's reach
    return None


def _place(evaluation: Evaluation, tuning: Any, question: str, right: set[str], ranking: Sequence[str], k: int) -> str:
    if len(ranking) > 1 and ranking[1] in right:
        return "ranked_second"
    text = evaluation.ds.queries[question]
    candidates = evaluation.kb.search_vector(text, evaluation.vectors[text], k, tuning, every_candidate=True).hits
    if not right & {h.doc_id for h in candidates}:
        return "out_of_reach"
    return "other"


def best(grades: dict[str, float]) -> set[str]:
    top = max(grades.values(), default=0)
    return {d for d, g in grades.items() if g == top and g > 0}


def diagnose(evaluation: Evaluation, parts: dict[str, list[str]], k: int = 10) -> dict[str, Any]:
    """The headroom figures of a finished run (`Evaluation.run` with the askloop strategy);
    `parts`: test question ids by part (with / without feedback); `k`: the depth the run searched."""
    ds = evaluation.ds
    nearest = nearest_feedback(evaluation)
    live = evaluation.tunings.get(STRATEGY)
    tuning = evaluation.kb.with_current_titles(live) if live is not None else None
    learned = tuning if isinstance(tuning, LearnedTuning) else None
    engine = evaluation.rankings.get(STRATEGY, {})
    rows: dict[str, dict[str, Any]] = {}
    for q in ds.test:
        grades = ds.test[q]
        rule = nearest.get(q)
        row: dict[str, Any] = {
            "nearest": hit_at_1([rule[1]] if rule else [], grades),
            "search": hit_at_1(evaluation.base_rankings.get(q, []), grades),
            "engine": hit_at_1(engine.get(q, []), grades),
        }
        row["ceiling"] = max(row["nearest"], row["search"])
        if engine and not row["engine"]:
            right = best(grades)
            vector = evaluation.vectors[ds.queries[q]]
            blocked = _blocked_by(learned, vector, right) if learned else None
            row["miss"] = blocked or _place(evaluation, live, q, right, engine.get(q, []), k)
        rows[q] = row

    def summary(ids: Sequence[str]) -> dict[str, Any]:
        n = len(ids)
        mean = {k: round(sum(rows[q][k] for q in ids) / n, 4) if n else 0.0
                for k in ("nearest", "search", "ceiling", "engine")}
        misses = Counter(rows[q]["miss"] for q in ids if "miss" in rows[q])
        return {"n": n, "hit@1": {"nearest_feedback": mean["nearest"], "search": mean["search"],
                                  "ceiling": mean["ceiling"], STRATEGY: mean["engine"]},
                "misses": {"total": sum(misses.values()),
                           "blocked": {rule: misses[rule] for rule in BLOCKED if misses[rule]},
                           **{place: misses[place] for place in PLACES}}}

    every = {"with_feedback": parts["with_feedback"], "without_feedback": parts["without_feedback"], "all": list(ds.test)}
    return {
        "strategy": STRATEGY,
        "validated_feedback_questions": len(dict.fromkeys(q for q, _ in evaluation.validated)),
        "params": learned.params.as_dict() if learned else None,
        "parts": {name: summary(ids) for name, ids in every.items()},
        "looser": loosened(evaluation, learned, {q: rows[q]["engine"] for q in rows}, every),
    }


def loosened(
    evaluation: Evaluation, tuning: LearnedTuning | None, engine: dict[str, float], parts: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Per `LOOSER` variant of the learned version: hit@1 per part, and the questions it gains and
    loses against the engine (`engine`: the engine's hit@1 per test question). Empty when the
    run learned no askloop version (nothing to loosen)."""
    if tuning is None:
        return []
    out = []
    for label, shift, title_off, everywhere in LOOSER:
        variant = tuning.with_params(Setting(shift, 2.0 if title_off else 0.0).apply(tuning.params))
        if everywhere or title_off:
            variant = variant.with_encoder_reach(0.0 if everywhere else variant.encoder_reach,
                                                 2.0 if title_off else None)
        ranked = evaluation.rank(list(evaluation.ds.test), variant)
        hit = {q: hit_at_1(ranked[q], evaluation.ds.test[q]) for q in ranked}
        figures = {}
        for part, ids in parts.items():
            n = len(ids)
            figures[part] = {
                "n": n,
                "hit@1": round(sum(hit[q] for q in ids) / n, 4) if n else 0.0,
                "gained": sum(1 for q in ids if hit[q] > engine[q]),
                "lost": sum(1 for q in ids if hit[q] < engine[q]),
            }
        out.append({"variant": label, "parts": figures})
    return out
