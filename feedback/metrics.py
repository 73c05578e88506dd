"""Retrieval quality figures, computed by ranx so they match what others report.

hit@1 is ours: the top document has the highest relevance grade of that question (ranx has no
graded "top is best" measure). Rankings are lists of document ids, best first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

METRICS = ("ndcg@10", "mrr@10", "recall@10", "hit@1")


def hit_at_1(ranking: Sequence[str], grades: Mapping[str, float]) -> float:
    if not ranking or not grades:
        return 0.0
    best = max(grades.values())
    return 1.0 if grades.get(ranking[0], 0) == best and best > 0 else 0.0


def per_query(
    qrels: Mapping[str, Mapping[str, float]], rankings: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, float]]:
    """metric → {query id → value}, for the queries that have both judgements and a ranking."""
    from ranx import Qrels, Run, evaluate

    ids = [q for q in qrels if q in rankings]
    if not ids:
        return {m: {} for m in METRICS}
    qrels_dict = {q: {d: int(g) for d, g in qrels[q].items()} for q in ids}
    run_dict: dict[str, dict[str, float]] = {}
    for q in ids:
        ranking = list(dict.fromkeys(rankings[q]))[:10]
        # ranx ranks by score: give strictly decreasing scores in our order.
        run_dict[q] = {d: float(len(ranking) - i) for i, d in enumerate(ranking)}
        if not run_dict[q]:
            run_dict[q] = {"__none__": 0.0}
    qrels_obj = Qrels(qrels_dict)
    run_obj = Run(run_dict)
    scores = evaluate(qrels_obj, run_obj, ["ndcg@10", "mrr@10", "recall@10"], return_mean=False, make_comparable=True)
    out: dict[str, dict[str, float]] = {}
    for metric in ("ndcg@10", "mrr@10", "recall@10"):
        values = scores[metric]
        out[metric] = {q: float(v) for q, v in zip(run_obj.keys(), values)}
    out["hit@1"] = {q: hit_at_1(list(rankings[q]), qrels[q]) for q in ids}
    return out


def mean_metrics(per: Mapping[str, Mapping[str, float]], ids: Sequence[str] | None = None) -> dict[str, float]:
    result = {}
    for metric in METRICS:
        values = per.get(metric, {})
        chosen = [values[q] for q in (ids if ids is not None else values) if q in values]
        result[metric] = round(sum(chosen) / len(chosen), 4) if chosen else 0.0
    return result


def evaluate_rankings(
    qrels: Mapping[str, Mapping[str, float]], rankings: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    return mean_metrics(per_query(qrels, rankings))
