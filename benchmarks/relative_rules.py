"""Could a *relative* use of feedback close the gap `askloop eval --diagnose` shows?

The engine lets a memory count by absolute similarity (its reach τ), which keeps feedback off
the questions of needs nobody voted on. The nearest-feedback rule is relative: it answers with
the document of whichever validated question is most similar, however far. This script measures
the middle ground on any BEIR folder, with clean simulated feedback (every feedback question's
document validated): base search scores plus a nearest-neighbour vote,

    score(d) = base(d) + λ · spread · Σ_{feedback questions q' of d} softmax_T(cos(q, q'))

applied to the base search's first `k` candidates only, optionally only when the search itself
is unsure (its first two scores within `m` spreads). Reported per part of the questions asked:
those whose document got feedback ("with") and those whose document did not ("without": the
harm). By default the feedback split alone is used (half of the needs teach, the rest of the
feedback is asked), never test.tsv; `--test` teaches all the feedback and asks the test
questions, for the development sets (`benchmarks/devsets/`), which are there to be tuned on.

    .venv/bin/python benchmarks/relative_rules.py --test benchmarks/devsets/python-faq benchmarks/devsets/flask-sections
    .venv/bin/python benchmarks/relative_rules.py ../shared/data/stackfaq ../shared/data/covid-qa

It measures the rule alone (no memories, no tuned encoder), so its "with" figures are not the
engine's; what matters is the *without* column: a rule that loses questions there on one set
cannot be a default, whatever it gains on another.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.services import eval_world_opener  # noqa: E402
from feedback.datasets import Dataset, load_dataset  # noqa: E402
from feedback.evaluation import EvalOptions, Evaluation, best_docs  # noqa: E402
from retrieval.tuning import NoTuning  # noqa: E402

# (λ, T, k, m): m = inf applies the vote whatever the search's own margin.
VARIANTS = [(0.0, 0.05, 0, float("inf"))] + [
    (lam, 0.05, k, m) for lam in (1.0, 3.0) for k in (2, 5) for m in (0.5, float("inf"))
]


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


def split(ds: Dataset, seed: int, test: bool) -> tuple[list[str], list[tuple[str, set[str]]]]:
    """(teaching feedback ids, asked (id, right documents)): with `test`, all the feedback teaches
    and the test questions are asked; else half of the feedback needs teach (three phrasings at
    most) and the rest of the feedback is asked."""
    if test:
        return list(ds.feedback_order), [(q, best_docs(g)) for q, g in ds.test.items()]
    by_need: dict[str, list[str]] = defaultdict(list)
    for q in ds.feedback_order:
        by_need[min(best_docs(ds.feedback[q]))].append(q)
    needs = sorted(by_need)
    half = set(random.Random(seed).sample(needs, len(needs) // 2))
    teach = [q for n in needs if n in half for q in by_need[n][:3]]
    asked = [(q, {n}) for n in needs for q in (by_need[n][3:] if n in half else by_need[n])]
    return teach, asked


def measure(path: Path, seed: int, test: bool) -> None:
    ds = load_dataset(path)
    with tempfile.TemporaryDirectory(prefix="askloop-rel-") as tmp:
        world = eval_world_opener()(ds, Path(tmp))
        evaluation = Evaluation(ds, EvalOptions(simulate=True, seed=seed), world)
        evaluation.embed_all()
        teach, asked = split(ds, seed, test)
        vec = {q: np.asarray(evaluation.vectors[ds.queries[q]], np.float32)
               for q in teach + [q for q, _ in asked]}
        base = {q: [(h.doc_id, h.score) for h in world.knowledge_base.search_vector(
            ds.queries[q], vec[q], 20, NoTuning(), every_candidate=True).hits] for q, _ in asked}
    memory = _unit(np.stack([vec[q] for q in teach]))
    docs = [min(best_docs(ds.feedback[q])) for q in teach]
    taught = set(docs)
    for lam, temperature, k, margin in VARIANTS:
        right = {True: [0, 0], False: [0, 0]}
        for q, relevant in asked:
            ranked = base[q]
            scores = np.asarray([s for _, s in ranked])
            spread = max(0.02, float(scores.std())) if len(scores) > 1 else 0.02
            total = {d: s for d, s in ranked}
            unsure = len(scores) < 2 or (scores[0] - scores[1]) / spread < margin
            if lam and unsure:
                similarity = memory @ vec[q]
                weights = np.exp((similarity - similarity.max()) / temperature)
                weights /= weights.sum()
                vote: dict[str, float] = defaultdict(float)
                for i in np.flatnonzero(weights > 1e-4):
                    vote[docs[i]] += float(weights[i])
                for d, _ in ranked[:k]:
                    total[d] += lam * spread * vote.get(d, 0.0)
            top = max(total, key=lambda d: total[d]) if total else None
            part = bool(relevant & taught)
            right[part][0] += top in relevant
            right[part][1] += 1
        label = "search alone" if not lam else f"λ {lam:g}, first {k}, " + (
            "always" if margin == float("inf") else f"when the margin < {margin:g} spread")
        cells = [f"{right[p][0] / right[p][1]:.3f} ({right[p][0]}/{right[p][1]})" if right[p][1] else "–"
                 for p in (True, False)]
        print(f"| {ds.name} | {label} | {cells[0]} | {cells[1]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test", action="store_true", help="ask the test questions (development sets only)")
    args = parser.parse_args()
    print("| data set | rule | hit@1 with feedback | hit@1 without |")
    print("|---|---|---|---|")
    for path in args.datasets:
        measure(path, args.seed, args.test)


if __name__ == "__main__":
    main()
