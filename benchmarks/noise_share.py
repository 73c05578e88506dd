"""Where the gain goes with noisy feedback: the share of the clean gain kept, per seed, apart for
test questions whose information need had a vote flipped and those whose votes were all true.

`askloop eval --noise P` reports how much of the clean gain survives. A flipped vote on a wrong
answer is a correction nobody made, and a flipped vote on a right one is a confirmation turned
into a 👎 (with a fix the moderator rejects): on needs that got one feedback question, nothing in
the feedback can stand in for it. This script runs the same protocol clean and noisy (one clean
run: without noise the seed changes nothing) on one ingested corpus and splits the gain:

* kept, true votes: the share kept on needs whose every vote was true — what the engine does
  with the information it was given (100% means noise elsewhere cost these needs nothing);
* kept, flipped: the same on needs with a flipped vote;
* ceiling: the share of the clean gain that sits on needs with true votes only — what an engine
  keeps that loses exactly the flipped needs' gain and nothing else.

    .venv/bin/python benchmarks/noise_share.py ../shared/data/covid-qa --seeds 0,1,2,3,4,5,7
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedback.datasets import load_dataset  # noqa: E402
from feedback.evaluation import EvalOptions, Evaluation, eval_services  # noqa: E402
from feedback.metrics import per_query  # noqa: E402

METRICS = ("hit@1", "ndcg@10")


def gain(per: dict[str, dict[str, float]], base: dict[str, dict[str, float]], metric: str, ids: Sequence[str]) -> float:
    return sum(per[metric][q] - base[metric][q] for q in ids)


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("dataset", type=Path, nargs="?", default=shared / "covid-qa")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,7", help="comma-separated noise seeds")
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--strategy", default="askloop")
    args = parser.parse_args()
    ds = load_dataset(args.dataset)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    with tempfile.TemporaryDirectory(prefix="askloop-noise-") as tmp:
        services = eval_services(ds, Path(tmp))

        def run(noise: float, seed: int) -> Evaluation:
            options = EvalOptions(simulate=True, noise=noise, seed=seed, strategies=[args.strategy], home=Path(tmp))
            evaluation = Evaluation(ds, options, services)
            evaluation.run()
            return evaluation

        clean = run(0.0, 0)
        base = per_query(ds.test, clean.base_rankings)
        clean_per = per_query(ds.test, clean.rankings[args.strategy])
        test_ids = list(ds.test)
        with_fb = clean.split(clean.feedback_ids())["with_feedback"]
        whole = {metric: gain(clean_per, base, metric, test_ids) for metric in METRICS}
        print(f"{ds.name}: noise {args.noise}, strategy {args.strategy}, {len(with_fb)} test questions with feedback")
        for metric in METRICS:
            print(f"  clean gain {metric}: {whole[metric]:+.2f} (sum over {len(test_ids)} test questions)")
        header = ["seed", "flipped votes", "n true / flipped"]
        for metric in METRICS:
            header += [f"{metric} kept", "kept, true votes", "kept, flipped", "ceiling"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        totals: dict[str, list[float]] = {}
        for seed in seeds:
            noisy = run(args.noise, seed)
            noisy_per = per_query(ds.test, noisy.rankings[args.strategy])
            parts = noisy.noise_split(with_fb)
            true, flipped = parts["with_true_feedback"], parts["with_flipped_feedback"]
            row = [str(seed), str(noisy.counts["votes_flipped"]), f"{len(true)} / {len(flipped)}"]
            for metric in METRICS:
                figures = [
                    (gain(noisy_per, base, metric, test_ids), whole[metric]),
                    (gain(noisy_per, base, metric, true), gain(clean_per, base, metric, true)),
                    (gain(noisy_per, base, metric, flipped), gain(clean_per, base, metric, flipped)),
                    (gain(clean_per, base, metric, true), whole[metric]),
                ]
                row += [share(a, b) for a, b in figures]
                for name, (a, b) in zip(("kept", "true", "flipped", "ceiling"), figures):
                    totals.setdefault(f"{metric}.{name}", []).append(a / b if b > 0 else float("nan"))
            print("| " + " | ".join(row) + " |", flush=True)
        means = ["mean", "", ""]
        for metric in METRICS:
            for name in ("kept", "true", "flipped", "ceiling"):
                values = [v for v in totals[f"{metric}.{name}"] if v == v]
                means.append(f"{100 * sum(values) / len(values):.0f}%" if values else "–")
        print("| " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
