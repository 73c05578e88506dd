"""Score learning parameters on dev splits made only from `qrels/feedback.tsv` (never test.tsv).

This is how the engine's default parameters were chosen, and how its calibration
(`feedback.calibration`) is checked: `--set calibrate=0` scores the defaults alone, and every
other variant calibrates on the teaching feedback first (its note is printed). Feedback questions
are grouped by information need (their most relevant document), and three splits are built per
data set:

* ``one-of-each``  — one feedback paraphrase per need teaches; the need's other paraphrases are
  asked afterwards (generalising from a single phrasing). Needs with one paraphrase are skipped.
* ``three-of-half`` — three paraphrases of a random half of the needs teach; every remaining
  paraphrase is asked, so the *without feedback* row measures harm to needs nobody voted on.
* ``half``         — one paraphrase of a random half of the needs teaches; the other half's
  paraphrases are asked (harm only: works for sets with one feedback question per need).

Feedback is simulated exactly as in `askloop eval`; each parameter set learns from the same
feedback database and the held-out questions are ranked through the real search path. The last
table sums, per parameter set, the questions gained at hit@1 with feedback and lost without.

    .venv/bin/python benchmarks/learning_dev.py ../shared/data/stackfaq ../shared/data/covid-qa \\
        --set calibrate=0 --set tau_vote=0.6,power=2 --set encoder.learning_rate=5e-4 \\
        --set encoder.min_pairs=1e9 --set rejected_fix_factor=0 --noise 0.2
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.services import eval_world_opener  # noqa: E402
from feedback.adapter import store_chunk_reads  # noqa: E402
from feedback.datasets import Dataset, load_dataset  # noqa: E402
from feedback.encoder_tuning import EncoderTraining  # noqa: E402
from feedback.evaluation import EvalOptions, Evaluation, best_docs  # noqa: E402
from feedback.learn_loop import base_search  # noqa: E402
from feedback.learning import LearningEngine, LearningParams  # noqa: E402
from retrieval.learned import MemoryParams  # noqa: E402
from retrieval.tuning_payload import tuning_from_payload  # noqa: E402
from retrieval.tuning import NoTuning  # noqa: E402


def dev_splits(ds: Dataset, seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """split name → (teaching feedback ids, held-out feedback ids)."""
    by_need: dict[str, list[str]] = defaultdict(list)
    for q in ds.feedback_order:
        by_need[min(best_docs(ds.feedback[q]))].append(q)
    needs = sorted(by_need)
    half = set(random.Random(seed).sample(needs, len(needs) // 2))
    splits: dict[str, tuple[list[str], list[str]]] = {}
    multi = [n for n in needs if len(by_need[n]) > 1]
    if multi:
        splits["one-of-each"] = ([by_need[n][0] for n in multi], [q for n in multi for q in by_need[n][1:]])
    if any(len(by_need[n]) > 3 for n in half):
        teach = [q for n in needs if n in half for q in by_need[n][:3]]
        asked = [q for n in needs for q in (by_need[n][3:] if n in half else by_need[n][1:])]
        splits["three-of-half"] = (teach, asked)
    splits["half"] = ([by_need[n][0] for n in needs if n in half], [q for n in needs if n not in half for q in by_need[n]])
    return splits


def parse_set(text: str) -> dict[str, float]:
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    return {k.strip(): float(v) for k, v in pairs}


def learning_params(variant: dict[str, float]) -> LearningParams:
    """`encoder.NAME=V` sets the query encoder's training (`encoder.min_pairs=1e9` turns it
    off); a LearningParams field (e.g. `rejected_fix_factor=0`) sets that; any other key is a
    memory parameter."""
    defaults = LearningParams()
    top = {k: type(getattr(defaults, k))(v) for k, v in variant.items() if k in LearningParams.__dataclass_fields__}
    memory = {k: v for k, v in variant.items() if not k.startswith("encoder.") and k not in top}
    encoder = EncoderTraining()
    for key, value in variant.items():
        if key.startswith("encoder."):
            name = key.removeprefix("encoder.")
            kind = type(getattr(encoder, name))
            encoder = replace(encoder, **{name: kind(value)})
    return LearningParams(memory=replace(MemoryParams(), **memory), encoder=encoder, **top)


def main() -> None:
    parser = argparse.ArgumentParser()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("datasets", nargs="*", type=Path, default=[shared / "stackfaq", shared / "covid-qa"])
    parser.add_argument("--set", action="append", default=[], help="memory parameters, e.g. tau_vote=0.65,power=2.5")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-defaults", action="store_true", help="score only the --set variants")
    parser.add_argument("--noise", type=float, default=0.0, help="flip each teaching vote with this probability")
    args = parser.parse_args()
    variants = ([] if args.skip_defaults else [{}]) + [parse_set(s) for s in args.set]
    missing = [p for p in args.datasets if not (p / "qrels" / "feedback.tsv").is_file()]
    if missing:
        parser.error(f"no qrels/feedback.tsv in {missing[0]} (give BEIR data set folders)")
    print("| data set | split | parameters | part | n | hit@1 before → after | nDCG@10 before → after |")
    print("|---|---|---|---|---|---|---|")
    # Per variant, summed over data sets and splits: net questions gained at hit@1 on the parts
    # with feedback, and net questions lost on the parts without (the harm the rules weigh first).
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path in args.datasets:
        full = load_dataset(path)
        with tempfile.TemporaryDirectory(prefix="askloop-dev-") as tmp:
            world = eval_world_opener()(full, Path(tmp))
            kb = world.knowledge_base
            for split, (teach, asked) in dev_splits(full, args.seed).items():
                dev = Dataset(full.path, f"{full.name}:{split}", full.queries, {q: full.feedback[q] for q in asked},
                              {q: full.feedback[q] for q in teach}, list(teach))
                evaluation = Evaluation(dev, EvalOptions(simulate=True, seed=7, noise=args.noise), world)
                evaluation.embed_all()
                loop = evaluation.open_loop(Path(tmp) / f"{split}.db")
                evaluation.simulate(loop, teach)
                feedback, doubtful = loop.store.training.feedback(), loop.store.training.doubtful_votes()
                golden = [(g.question, list(g.doc_ids)) for g in loop.store.golden.all()]
                loop.close()
                base = evaluation.rank(asked, NoTuning())
                parts = evaluation.split(teach)
                for variant in variants:
                    params = learning_params(variant)
                    chunk_vectors, doc_titles = store_chunk_reads(kb.store)
                    engine = LearningEngine(kb.embedder, params, vector_cache=evaluation.vectors,
                                            chunk_vectors=chunk_vectors, doc_titles=doc_titles, search=base_search(kb))
                    learned = engine.build(feedback, "askloop", doubtful, golden)
                    after = evaluation.rank(asked, tuning_from_payload(learned.payload, None, kb.embedder))
                    label = ",".join(f"{k}={v:g}" for k, v in variant.items()) or "defaults (calibrated)"
                    if learned.diff.get("calibration"):
                        print(f"<!-- {full.name} {split} {label}: {learned.diff['calibration']['note']} -->", flush=True)
                    for part, ids in parts.items():
                        if not ids:
                            continue
                        b, a = evaluation._metrics(base, ids), evaluation._metrics(after, ids)
                        moved = round((a["hit@1"] - b["hit@1"]) * len(ids))
                        if part == "with_feedback":
                            totals[label][0] += moved
                        else:
                            totals[label][1] -= moved
                        print(f"| {full.name} | {split} | {label} | {part.replace('_', ' ')} | {len(ids)} | "
                              f"{b['hit@1']:.3f} → {a['hit@1']:.3f} | {b['ndcg@10']:.3f} → {a['ndcg@10']:.3f} |",
                              flush=True)
    print()
    print("| parameters | hit@1: questions gained with feedback | questions lost without feedback |")
    print("|---|---|---|")
    for label, (gained, lost) in totals.items():
        print(f"| {label} | {gained:+d} | {lost:d} |")


if __name__ == "__main__":
    main()
