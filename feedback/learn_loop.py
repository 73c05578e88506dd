"""Learn → proposal → gate: the one path from validated feedback to a reviewable, measured proposal.

The CLI (`askloop learn`), the background worker and the evaluation harness all call
`Learner.learn`, so they build, de-duplicate and evaluate the same way:
- nothing is proposed without validated feedback;
- what was learned is identified by the payload's content hash, so a proposal identical to the
  live version, or to one already waiting for a moderator, is not made again (a proposal whose
  evaluation never finished is evaluated now instead);
- every new proposal is evaluated by the gate before any moderator sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from feedback.calibration import CANDIDATES_K, Search
from feedback.config import LoopConfig
from feedback.gate import evaluate_payload
from feedback.learning import STRATEGIES, LearnedProposal, LearningEngine
from feedback.records import ProposalRecord
from feedback.refs import proposal_ref
from feedback.store import FeedbackStore
from retrieval.search import KnowledgeBase
from retrieval.tuning import NoTuning
from retrieval.types import Hit


@dataclass(frozen=True)
class LearnOutcome:
    """`proposal`: the proposal this call made (`new`), or the existing one that already carries
    exactly this feedback, or None; `reason` says why nothing new was made. `evaluated`: this call
    ran the gate (on a new proposal, or on one whose evaluation had never finished)."""

    proposal: ProposalRecord | None
    new: bool
    reason: str = ""
    learned: LearnedProposal | None = None
    evaluated: bool = False


class Learner:
    def __init__(self, store: FeedbackStore, knowledge_base: Callable[[], KnowledgeBase], config: LoopConfig) -> None:
        self.store = store
        self._knowledge_base = knowledge_base
        self.config = config

    def engine(self, vectors: dict[str, np.ndarray] | None = None) -> LearningEngine:
        """The engine with everything the store and the knowledge base can give it: the active
        version's question vectors (learning is incremental), the stored chunk vectors and titles
        (for query tuning)."""
        from feedback.adapter import store_chunk_reads

        kb = self._knowledge_base()
        chunk_vectors, doc_titles = store_chunk_reads(kb.store)
        engine = LearningEngine(kb.embedder, self.config.learning, vector_cache=vectors,
                                chunk_vectors=chunk_vectors, doc_titles=doc_titles, search=base_search(kb))
        active = self.store.proposals.active_version()
        if active is not None:
            engine.remember_vectors(active.payload)
        return engine

    def build(self, strategy: str = "askloop", *, vectors: dict[str, np.ndarray] | None = None) -> LearnedProposal:
        """What the engine would propose now (nothing is recorded)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        feedback = self.store.training.feedback()
        golden = [(g.question, list(g.doc_ids)) for g in self.store.golden.all()] if strategy == "askloop" else []
        return self.engine(vectors).build(feedback, strategy, self.store.training.doubtful_votes(), golden)

    def learn(self, created_by: str, strategy: str = "askloop", *,
              vectors: dict[str, np.ndarray] | None = None,
              progress: Callable[[str], None] | None = None) -> LearnOutcome:
        """`progress(step)` is told when each slow step starts (learning, evaluating), so an
        interface can show it."""
        say = progress or (lambda step: None)
        feedback = self.store.training.feedback()
        if not feedback.votes and not feedback.corrections:
            return LearnOutcome(None, False, "no validated feedback yet: votes must count and corrections must "
                                             "be approved before anything can be learned")
        say(f"learning from {len(feedback.votes)} vote(s) and {len(feedback.corrections)} approved correction(s)")
        learned = self.build(strategy, vectors=vectors)
        empty = strategy == "none" or (not learned.memories and not learned.payload.get("passages")
                                       and strategy == "askloop")
        if empty:
            return LearnOutcome(None, False, "the validated feedback gives nothing to change", learned)
        payload_id = str(learned.payload.get("id", ""))
        active = self.store.proposals.active_version()
        if active is not None and payload_id and active.payload.get("id") == payload_id:
            return LearnOutcome(None, False, f"version {active.number}, which is live, already holds exactly this "
                                             "feedback", learned)
        known = self.store.proposals.open_with_payload(payload_id)
        if known is not None and known.status != "pending":
            return LearnOutcome(known, False, f"proposal {proposal_ref(known.id)} ({known.status}) already holds "
                                              "exactly this feedback", learned)
        proposal = known or self.store.proposals.create(summary=learned.summary, diff=learned.diff,
                                                        payload=learned.payload, created_by=created_by)
        reason = "" if known is None else f"proposal {proposal_ref(known.id)} already held exactly this feedback"
        say(f"evaluating proposal {proposal_ref(proposal.id)} on the golden set and recent questions")
        return LearnOutcome(self.evaluate(proposal.id, vectors=vectors), known is None, reason, learned, True)

    def evaluate(self, proposal_id: int, *, vectors: dict[str, np.ndarray] | None = None) -> ProposalRecord:
        """Run the gate on a stored proposal and record the result ('evaluated' or 'failing')."""
        record = self.store.proposals.get(proposal_id)
        result = evaluate_payload(self.store, self._knowledge_base(), record.payload, self.config.gate,
                                  vectors=vectors)
        return self.store.proposals.record_evaluation(record.id, result.evaluation, result.passed)


def base_search(kb: KnowledgeBase) -> Search:
    """The knowledge base's own search without any tuning (its keyword scores included): the
    candidates calibration reranks held-out feedback questions among."""

    def search(questions: Sequence[str], vectors: np.ndarray) -> list[list[Hit]]:
        return [r.hits for r in kb.search_many(questions, CANDIDATES_K, NoTuning(), vectors)]

    return search


def describe(outcome: LearnOutcome) -> dict[str, Any]:
    """The outcome as JSON-ready data (for `--json` and logs)."""
    proposal = outcome.proposal
    return {
        "proposal": proposal.id if proposal else None,
        "new": outcome.new,
        "status": proposal.status if proposal else None,
        "reason": outcome.reason or None,
        "summary": proposal.summary if proposal else None,
        "diff": proposal.diff if proposal else None,
        "evaluation": proposal.evaluation if proposal else None,
    }
