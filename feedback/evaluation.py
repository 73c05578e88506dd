"""`askloop eval`: measure retrieval on a BEIR data set, before and after simulated feedback.

The run goes through the code paths the bot uses: the corpus is ingested into a data dir, every
simulated question is answered and recorded in a feedback store (SQLite in that dir, schema by
migration), votes go through the store's validation, corrections are suggested and moderated,
the learning engine builds a proposal, the gate evaluates it, a simulated moderator approves it
only if it passes, the store applies it, and the test questions are answered with the active
version. Each strategy gets its own copy of the same feedback database, so they learn from
exactly the same feedback and none sees another's versions.

Protocol (see docs/learning.md): a simulated user votes 👍 when the top source is a most-relevant
document, else 👎 with a correction citing the most relevant one; `noise` flips each vote with
that probability, and a flipped 👎 cites a random wrong document; `correction_rate` is the share
of 👎 that carry a correction at all (the rest are bare votes, as most people leave them); the
moderator approves corrections citing a relevant document and rejects the rest.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from feedback.config import LoopConfig
from feedback.datasets import Dataset, load_dataset
from feedback.gate import GateConfig
from feedback.learning import STRATEGIES
from feedback.loop import FeedbackLoop
from feedback.metrics import METRICS, mean_metrics, per_query
from feedback.refs import correction_ref, proposal_ref
from feedback.store import FeedbackStore
from retrieval.tuning_payload import tuning_from_payload
from retrieval.search import KnowledgeBase
from retrieval.tuning import NoTuning, Tuning

MODERATOR = "eval-moderator"
EVAL_K = 10

Log = Callable[[str], None]


@dataclass
class EvalOptions:
    simulate: bool = False
    noise: float = 0.0
    seed: int = 0
    strategies: Sequence[str] = ("none", "doc-boost", "askloop")
    home: Path | None = None
    feedback_share: float = 1.0  # share of information needs that get feedback (the rest: no-harm check)
    correction_rate: float = 1.0  # share of 👎 that carry a correction; the rest are bare votes
    diagnose: bool = False  # after learning, what is left to gain and where (feedback.diagnose)
    gate: GateConfig = field(default_factory=GateConfig)

    def check(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
        if not self.strategies:
            raise ValueError("give at least one strategy")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError("--noise is a probability between 0 and 1")
        if not 0.0 < self.feedback_share <= 1.0:
            raise ValueError("--feedback-share must be in (0, 1]")
        if not 0.0 <= self.correction_rate <= 1.0:
            raise ValueError("--correction-rate is a share between 0 and 1")
        if self.diagnose and (not self.simulate or "askloop" not in self.strategies):
            raise ValueError("--diagnose looks at what the askloop strategy learned: give --simulate-feedback "
                             "and include askloop in --strategy")


def best_docs(grades: dict[str, float]) -> set[str]:
    top = max(grades.values(), default=0)
    return {d for d, g in grades.items() if g == top and g > 0}


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy (WAL included) through SQLite's backup API."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@dataclass
class EvalWorld:
    """What an evaluation runs against: a knowledge base with the corpus ingested, the loop's
    configuration, and a data dir for the feedback databases it makes."""

    knowledge_base: KnowledgeBase
    config: LoopConfig
    home: Path


class Evaluation:
    """One `askloop eval` run (kept as an object so tests can look at its pieces)."""

    def __init__(self, dataset: Dataset, options: EvalOptions, world: EvalWorld, log: Log | None = None) -> None:
        options.check()
        self.ds = dataset
        self.options = options
        self.world = world
        self.kb = world.knowledge_base
        self.log = log or (lambda message: None)
        self.vectors: dict[str, np.ndarray] = {}
        self.timings: dict[str, float] = {}
        self.counts: dict[str, Any] = {}
        # Kept for a closer look (benchmarks/noise_share.py): per-question rankings, and the
        # information needs one of whose simulated votes noise flipped.
        self.base_rankings: dict[str, list[str]] = {}
        self.rankings: dict[str, dict[str, list[str]]] = {}
        self.flipped_needs: set[str] = set()
        # Feedback questions with the document the feedback validated for them (a counted 👍's
        # top source, an approved correction's), in the order given; and each strategy's live
        # tuning after learning: what `feedback.diagnose` looks at.
        self.validated: list[tuple[str, str]] = []
        self.tunings: dict[str, Tuning] = {}

    # -- pieces --------------------------------------------------------------------------------
    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)

    def embed_all(self) -> None:
        ids = list(self.ds.test) + list(self.ds.feedback_order)
        texts = list(dict.fromkeys(self.ds.queries[q] for q in ids))
        for text, vector in zip(texts, self.kb.embedder.encode(texts)):
            self.vectors[text] = vector

    def rank(self, query_ids: Sequence[str], tuning: Tuning) -> dict[str, list[str]]:
        out = {}
        for q in query_ids:
            text = self.ds.queries[q]
            out[q] = [h.doc_id for h in self.kb.search_vector(text, self.vectors[text], EVAL_K, tuning).hits]
        return out

    def feedback_ids(self) -> list[str]:
        order = list(self.ds.feedback_order)
        share = self.options.feedback_share
        if share >= 1.0:
            return order
        needs = sorted({d for q in order for d in best_docs(self.ds.feedback[q])})
        rng = random.Random(self.options.seed)
        rng.shuffle(needs)
        kept = set(needs[: max(1, round(len(needs) * share))])
        return [q for q in order if best_docs(self.ds.feedback[q]) & kept]

    def split(self, feedback_ids: Sequence[str]) -> dict[str, list[str]]:
        """Test questions with and without a paraphrase (same best document) in the feedback."""
        covered = set().union(*(best_docs(self.ds.feedback[q]) for q in feedback_ids)) if feedback_ids else set()
        with_fb = [q for q in self.ds.test if best_docs(self.ds.test[q]) & covered]
        without = [q for q in self.ds.test if q not in set(with_fb)]
        return {"with_feedback": with_fb, "without_feedback": without}

    def noise_split(self, with_feedback: Sequence[str]) -> dict[str, list[str]]:
        """Test questions with feedback, by whether noise flipped a vote of their need's: what a
        flipped vote took away (a correction never made, a confirmation turned into a 👎) no
        learner can recover, so the kept share means most on the other part."""
        flipped = {q for q in with_feedback if best_docs(self.ds.test[q]) & self.flipped_needs}
        return {"with_true_feedback": [q for q in with_feedback if q not in flipped],
                "with_flipped_feedback": [q for q in with_feedback if q in flipped]}

    def open_loop(self, path: Path) -> FeedbackLoop:
        """A feedback loop over its own SQLite database (schema by migration), the eval moderator
        allowed to decide."""
        store = FeedbackStore(f"sqlite:///{path}")
        store.upgrade()
        config = replace(self.world.config, gate=self.options.gate).with_moderators(MODERATOR)
        return FeedbackLoop(store, self.kb, config)

    def simulate(self, loop: FeedbackLoop, feedback_ids: Sequence[str]) -> dict[str, int]:
        """Ask, vote, correct and moderate, exactly as people would through the bot.

        Whether a 👎 carries a correction is drawn from a generator of its own (seeded from the
        seed), and a flipped 👎 draws its wrong document whether or not it is sent: the noise
        stream is the same at every correction rate, so runs at different rates differ only
        in the corrections, and rate 1 (no draw made) reproduces the runs made before the rate
        existed."""
        rng = random.Random(self.options.seed)
        fixes = random.Random(f"correction-rate:{self.options.seed}")
        noise, rate = self.options.noise, self.options.correction_rate
        all_docs = sorted(self.kb.store.document_index())
        counts = {"questions": 0, "votes_up": 0, "votes_down": 0, "votes_counted": 0, "votes_flipped": 0,
                  "votes_down_bare": 0, "corrections_suggested": 0, "corrections_approved": 0,
                  "corrections_rejected": 0}
        for number, q in enumerate(feedback_ids):
            text = self.ds.queries[q]
            grades = self.ds.feedback[q]
            user = f"eval-user-{number}"
            answered = loop.answer(text, asker=user, origin="eval", vector=self.vectors[text])
            assert answered.answer_id is not None
            hits = answered.answer.hits
            counts["questions"] += 1
            good = bool(hits) and hits[0].doc_id in best_docs(grades)
            flipped = noise > 0 and rng.random() < noise
            up = good != flipped
            counts["votes_flipped"] += int(flipped)
            if flipped:
                self.flipped_needs |= best_docs(grades)
            outcome = loop.vote(answered.answer_id, user, 1 if up else -1, source="eval")
            counts["votes_up" if up else "votes_down"] += 1
            counts["votes_counted"] += int(outcome.counted)
            if up:
                if outcome.counted and hits:
                    self.validated.append((q, hits[0].doc_id))
                continue
            if flipped:
                wrong = [d for d in all_docs if grades.get(d, 0) <= 0]
                cite = rng.choice(wrong) if wrong else None
            else:
                cite = sorted(grades, key=lambda d: (-grades[d], d))[0]
            if cite is None or (rate < 1.0 and fixes.random() >= rate):
                counts["votes_down_bare"] += 1
                continue
            correction = loop.suggest_correction(answered.answer_id, user, source=f"doc:{cite}", origin="eval")
            counts["corrections_suggested"] += 1
            relevant = grades.get(cite, 0) > 0
            note = "cites a relevant document" if relevant else "cites an irrelevant document"
            loop.decide(correction_ref(correction.id), MODERATOR, relevant, note=note)
            counts["corrections_approved" if relevant else "corrections_rejected"] += 1
            if relevant:
                self.validated.append((q, cite))
        return counts

    def learn_and_apply(self, loop: FeedbackLoop, strategy: str) -> tuple[Tuning, dict[str, Any]]:
        """Engine → proposal → gate → moderator → apply; returns the live tuning and what happened."""
        if strategy == "none":
            return NoTuning(), {"proposal": None, "gate": "not run (strategy none)", "applied": False}
        started = time.perf_counter()
        outcome = loop.learn(MODERATOR, strategy, vectors=self.vectors)
        proposal, learned = outcome.proposal, outcome.learned
        total = time.perf_counter() - started
        gate_seconds = float((proposal.evaluation or {}).get("seconds", 0.0)) if proposal else 0.0
        self.timings[f"{strategy}.learn_s"] = round(total - gate_seconds, 3)
        self.timings[f"{strategy}.gate_s"] = round(gate_seconds, 3)
        if proposal is None:
            return NoTuning(), {"proposal": None, "gate": f"not run ({outcome.reason})", "applied": False}
        passed = proposal.status == "evaluated"
        info: dict[str, Any] = {
            "proposal": proposal.id,
            "gate": "passed" if passed else "failing",
            "golden": proposal.evaluation["golden"]["count"] if proposal.evaluation else 0,
            "golden_worse": len(proposal.evaluation["golden"]["worse"]) if proposal.evaluation else 0,
            "applied": False,
            "query_tuning": proposal.diff.get("query_tuning"),
        }
        if passed:
            loop.decide(proposal_ref(proposal.id), MODERATOR, True, note="passed the gate")
            info["applied"] = True
        live = loop.live.current()
        if not passed and learned is not None:  # what it would have done: reported, never applied
            would = tuning_from_payload(learned.payload, None, self.kb.embedder)
            info["proposal_metrics"] = self._metrics(self.rank(list(self.ds.test), would))
        return live, info

    def _metrics(self, rankings: dict[str, list[str]], ids: Sequence[str] | None = None) -> dict[str, float]:
        return mean_metrics(per_query(self.ds.test, rankings), ids)

    # -- the whole run -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.log("embedding questions")
        self.embed_all()
        self._timed("embed_questions_s", started)
        test_ids = list(self.ds.test)
        started = time.perf_counter()
        base_rankings = self.base_rankings = self.rank(test_ids, NoTuning())
        self._timed("baseline_s", started)
        before = self._metrics(base_rankings)
        result: dict[str, Any] = {"dataset": self.ds.name, "strategies": {}, "counts": self.counts}
        feedback_ids = self.feedback_ids() if self.options.simulate else []
        split_ids = self.split(feedback_ids)
        self.counts.update({"test_questions": len(test_ids), "feedback_questions": len(feedback_ids),
                            "test_with_feedback": len(split_ids["with_feedback"]),
                            "test_without_feedback": len(split_ids["without_feedback"]),
                            "noise": self.options.noise, "seed": self.options.seed,
                            "correction_rate": self.options.correction_rate})
        split: dict[str, Any] = {}
        gates: dict[str, Any] = {}
        if not self.options.simulate:
            for strategy in self.options.strategies:
                result["strategies"][strategy] = {"before": before, "after": before}
            result["note"] = "no feedback simulated (use --simulate-feedback): after equals before"
        else:
            home = self.world.home
            master = home / "eval-feedback.db"
            master.unlink(missing_ok=True)
            loop = self.open_loop(master)
            self.log(f"simulating feedback on {len(feedback_ids)} question(s)")
            started = time.perf_counter()
            self.counts.update(self.simulate(loop, feedback_ids))
            loop.close()
            if self.options.noise > 0:
                split_ids.update(self.noise_split(split_ids["with_feedback"]))
            self._timed("simulate_s", started)
            for strategy in self.options.strategies:
                self.log(f"strategy {strategy}: learning, gate, apply, answering test questions")
                copy = home / f"eval-feedback-{strategy}.db"
                _copy_sqlite(master, copy)
                strategy_loop = self.open_loop(copy)
                live, info = self.learn_and_apply(strategy_loop, strategy)
                strategy_loop.close()
                self.tunings[strategy] = live
                started = time.perf_counter()
                rankings = self.rankings[strategy] = self.rank(test_ids, live)
                self._timed(f"{strategy}.answer_s", started)
                result["strategies"][strategy] = {"before": before, "after": self._metrics(rankings)}
                gates[strategy] = info
                split[strategy] = {
                    part: {"n": len(ids), "before": self._metrics(base_rankings, ids), "after": self._metrics(rankings, ids)}
                    for part, ids in split_ids.items()
                }
            self.counts["gate"] = gates
            result["split"] = split
            if self.options.diagnose:
                from feedback.diagnose import diagnose

                self.log("diagnosing what is left")
                started = time.perf_counter()
                result["diagnosis"] = diagnose(self, split_ids, EVAL_K)
                self._timed("diagnose_s", started)
        result["timings"] = self.timings
        return result


OpenWorld = Callable[[Dataset, Path], EvalWorld]


def run_eval(dataset_dir: Path, options: EvalOptions, *, open_world: OpenWorld,
             log: Log | None = None) -> dict[str, Any]:
    """Ingest into `options.home` (a fresh temporary dir by default) and evaluate.

    `open_world(dataset, home)` ingests the corpus into a knowledge base kept in `home` and
    returns it with the loop's configuration (the interface layer knows how to build one)."""
    dataset = load_dataset(dataset_dir)
    options.check()
    with tempfile.TemporaryDirectory(prefix="askloop-eval-") as tmp:
        started = time.perf_counter()
        (log or (lambda message: None))(f"ingesting {dataset.corpus}")
        world = open_world(dataset, Path(options.home) if options.home else Path(tmp))
        evaluation = Evaluation(dataset, options, world, log)
        evaluation.timings["ingest_s"] = round(time.perf_counter() - started, 3)
        return evaluation.run()


def plot_results(result: dict[str, Any], path: Path) -> None:
    """Before/after bars per strategy and metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(result["strategies"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.6), sharey=True)
    for ax, metric in zip(np.atleast_1d(axes), METRICS):
        x = np.arange(len(strategies))
        before = [result["strategies"][s]["before"][metric] for s in strategies]
        after = [result["strategies"][s]["after"][metric] for s in strategies]
        ax.bar(x - 0.2, before, 0.4, label="before", color="#9aa5b1")
        ax.bar(x + 0.2, after, 0.4, label="after", color="#2b7bb9")
        for xi, value in zip(x + 0.2, after):
            ax.text(xi, value + 0.01, f"{value:.2f}", ha="center", fontsize=7)
        ax.set_xticks(x, strategies, fontsize=8)
        ax.set_title(metric)
        ax.set_ylim(0, 1.08)
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    noise = result.get("counts", {}).get("noise", 0)
    fig.suptitle(f"{result['dataset']}: before / after simulated feedback (noise {noise})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
