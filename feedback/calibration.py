"""Calibration: the engine checks its reach and strength on the team's own validated feedback.

One global set of constants cannot suit every knowledge base: on a manual whose every topic has a
descriptive title, the title rule and the reaches that keep feedback off neighbouring entries can
also keep it off the next person's paraphrase; on a set of short, similar FAQ entries they are
what keeps feedback from hurting the questions nobody voted on. Which applies is something the
team's own feedback can show, when it holds several phrasings of the same need:

* **held-out phrasings.** Questions with a validated target (the document of an approved
  correction, else the top document of a counted 👍) are grouped by need (that document). Each
  phrasing of a need with several goes to one fold (the need's other phrasings teach: does
  feedback reach a paraphrase?); a need with one phrasing, and one in `WHOLE_NEEDS` of the
  others, goes to a fold whole (nothing of it teaches: does other needs' feedback pull it away?).
  A question and every repeat of it (all its votes and corrections) sit on one side of a fold
  only. Per fold, memories are built from the other folds' feedback and the held-out
  phrasings are ranked through the real ranking code (`LearnedTuning.rerank`) on their base
  candidates; team-added golden questions are held out by construction and ranked with all of it.
* **a small fixed grid within fixed bounds** (`GRID`): the reach of 👍 and corrections, the
  title rule's margin (2 turns it off) and the strength. 👎 keeps its near-repeat reach.
* **the defaults unless the evidence is clear.** Another setting is chosen only when, against
  the defaults on the same held-out questions, it gains clearly more questions at hit@1 than it
  loses (at least `MIN_NET`, and twice the noise of a sign test), loses no nDCG@10, and loses no
  question of the needs held out whole (harm) — believed only when at least `MIN_HARM_CHECKED`
  of those were answered right by the defaults (held-out feedback phrasings are easier to keep
  than the questions of needs nobody voted on; see docs/learning.md). With too few held-out
  paraphrases (one phrasing per need, or a handful), the feedback cannot tell, and the defaults
  stay.

Cheap by design: the question vectors are the cached ones, the base candidates are fetched once,
each fold's memories are decoded once and every setting shares its similarities
(`LearnedTuning.with_params`); the query encoder is not retrained per fold (its reach follows the
chosen title margin, which is measured on the memories alone).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from feedback.memories import shrunk_centre, top_document
from feedback.records import TrainingFeedback
from retrieval.learned import PASSAGE_PREFIX, LearnedTuning, MemoryParams
from retrieval.types import Hit

# The grid: reach shifts (added to tau and tau_vote), title margins, strength (× scale).
REACH_SHIFTS = (0.0, -0.05, -0.1, -0.15, 0.05)
TITLE_MARGINS = (0.0, 0.05, 2.0)
STRENGTHS = (1.0, 2.0)
# Safe bounds the grid never leaves, whatever the defaults are set to.
TAU_BOUNDS = (0.3, 0.8)
TAU_VOTE_BOUNDS = (0.45, 0.85)
MAX_SCALE = 6.0

FOLDS = 5
WHOLE_NEEDS = 2  # one need in this many, of those with several phrasings, is held out whole (harm)
MAX_HELD_OUT = 400  # held-out questions scored (a stable sample beyond this): bounds the cost
MIN_PARAPHRASES = 12  # held-out phrasings whose need has other feedback, at the least
MIN_PARAPHRASE_NEEDS = 4  # … from this many needs
# Questions held out whole that the defaults answer right, at the least, before a looser setting
# can be said to cost them nothing: a loss rate of 2% is then expected to show as 2 questions.
MIN_HARM_CHECKED = 100
MIN_NET = 3  # questions gained at hit@1, net of those lost, before a setting replaces the defaults
CANDIDATES_K = 20  # base candidates per held-out question
NDCG_K = 10

# Base candidates (no tuning) for questions given with their vectors: the knowledge base's search.
Search = Callable[[Sequence[str], np.ndarray], list[list[Hit]]]


@dataclass(frozen=True)
class Setting:
    """One point of the grid, as offsets from the defaults."""

    reach_shift: float = 0.0
    title_margin: float = 0.0
    strength: float = 1.0

    def apply(self, base: MemoryParams) -> MemoryParams:
        return replace(
            base,
            tau=_clip(base.tau + self.reach_shift, TAU_BOUNDS),
            tau_vote=_clip(base.tau_vote + self.reach_shift, TAU_VOTE_BOUNDS),
            title_margin=max(base.title_margin, self.title_margin),  # only ever loosened
            scale=min(MAX_SCALE, base.scale * self.strength),
        )

    def describe(self) -> str:
        parts = []
        if self.reach_shift:
            parts.append(f"reach {self.reach_shift:+.2f}")
        if self.title_margin >= 2:
            parts.append("title rule off")
        elif self.title_margin:
            parts.append(f"title margin {self.title_margin:.2f}")
        if self.strength != 1.0:
            parts.append(f"strength ×{self.strength:g}")
        return ", ".join(parts) or "defaults"


DEFAULT = Setting()
GRID = tuple(Setting(r, t, s) for t in TITLE_MARGINS for r in REACH_SHIFTS for s in STRENGTHS)


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return round(min(bounds[1], max(bounds[0], value)), 4)


@dataclass(frozen=True)
class Memo:
    """What calibration needs of a memory (see `feedback.learning.Memory`)."""

    question: str
    doc_id: str
    weight: float
    is_vote: bool


@dataclass(frozen=True)
class HeldOut:
    question: str
    target: str
    fold: int  # -1: a golden question, ranked with all the feedback
    paraphrase: bool  # its need has feedback on another phrasing (else: harm only)


@dataclass
class Calibration:
    """The chosen memory parameters and the evidence, as the proposal shows it."""

    params: MemoryParams
    report: dict[str, Any]

    @property
    def line(self) -> str:
        return str(self.report.get("note", ""))


def targets(feedback: TrainingFeedback) -> dict[str, str]:
    """question → its validated document: an approved correction's, else a 👍's top document."""
    found: dict[str, str] = {}
    for vote in feedback.votes:
        if vote.value > 0 and vote.weight > 0:
            doc = top_document(vote.shown)
            if doc and not doc.startswith(PASSAGE_PREFIX):
                found.setdefault(vote.question, doc)
    for correction in feedback.corrections:
        if correction.doc_id:
            found[correction.question] = str(correction.doc_id)
    return found


def _stable(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def held_out(
    found: dict[str, str], golden: Sequence[tuple[str, Sequence[str]]], folds: int = FOLDS
) -> list[HeldOut]:
    """The held-out questions: phrasings of a need spread over the folds, single-phrasing needs
    whole in one fold, and golden questions that are not themselves feedback questions."""
    by_need: dict[str, list[str]] = {}
    for question, doc in found.items():
        by_need.setdefault(doc, []).append(question)
    out: list[HeldOut] = []
    for need, phrasings in sorted(by_need.items()):
        phrasings = sorted(phrasings, key=_stable)
        if len(phrasings) == 1 or _stable(f"whole:{need}") % WHOLE_NEEDS == 0:
            # held out whole: measures harm, the pull of other needs' feedback on questions
            # whose need nobody voted on
            out.extend(HeldOut(q, need, _stable(need) % folds, False) for q in phrasings)
            continue
        offset = _stable(need) % folds
        out.extend(HeldOut(q, need, (offset + j) % folds, True) for j, q in enumerate(phrasings))
    if len(out) > MAX_HELD_OUT:
        out = sorted(out, key=lambda h: _stable(h.question))[:MAX_HELD_OUT]
    for question, docs in golden:
        if question in found or not docs:
            continue
        out.append(HeldOut(question, str(docs[0]), -1, str(docs[0]) in by_need))
    return out


def _rank_of(target: str, hits: list[Hit]) -> int | None:
    for i, hit in enumerate(hits[:NDCG_K]):
        if hit.doc_id == target:
            return i + 1
    return None


def _fold_tuning(
    memories: Sequence[Memo], vectors: dict[str, np.ndarray], center_prior: int,
    titles: tuple[list[str], np.ndarray] | None,
) -> LearnedTuning | None:
    if not memories:
        return None
    questions = sorted({m.question for m in memories})
    index = {q: i for i, q in enumerate(questions)}
    matrix = np.stack([vectors[q] for q in questions]).astype(np.float32)
    return LearnedTuning(
        version=None,
        params=MemoryParams(),
        questions=matrix,
        memory_question=np.asarray([index[m.question] for m in memories], dtype=np.int64),
        memory_doc=[m.doc_id for m in memories],
        memory_weight=np.asarray([m.weight for m in memories], dtype=np.float32),
        memory_is_vote=np.asarray([m.is_vote for m in memories], bool),
        center=shrunk_centre(matrix, center_prior),
        title_docs=titles[0] if titles else None,
        title_vectors=titles[1] if titles else None,
    )


def _defaults(base: MemoryParams, report: dict[str, Any], why: str) -> Calibration:
    report.update(status="defaults", reason=why, setting=DEFAULT.describe(),
                  note=f"calibration: kept the safe defaults — {why}")
    return Calibration(base, report)


def calibrate(
    memories: Sequence[Memo],
    found: dict[str, str],
    vectors: dict[str, np.ndarray],
    base: MemoryParams,
    search: Search | None,
    *,
    center_prior: int,
    titles: tuple[list[str], np.ndarray] | None = None,
    golden: Sequence[tuple[str, Sequence[str]]] = (),
) -> Calibration:
    """Score `GRID` on held-out folds of the feedback; the defaults unless another setting is
    clearly better (see the module docstring). `vectors` must hold every question's vector."""
    started = time.perf_counter()
    report: dict[str, Any] = {"folds": FOLDS, "candidates": len(GRID)}
    if search is None:
        return _defaults(base, report, "no knowledge base to rank held-out questions on")
    items = [h for h in held_out(found, golden) if h.question in vectors]
    paraphrases = [h for h in items if h.paraphrase]
    report.update(held_out=len(items), paraphrases=len(paraphrases),
                  paraphrase_needs=len({h.target for h in paraphrases}))
    if len(paraphrases) < MIN_PARAPHRASES or report["paraphrase_needs"] < MIN_PARAPHRASE_NEEDS:
        single = len(set(found.values())) == len(found)
        why = ("only one phrasing per need: no need has a held-out paraphrase to show how far feedback "
               "should reach" if single else
               f"too few held-out paraphrases ({len(paraphrases)} of {report['paraphrase_needs']} need(s); "
               f"at least {MIN_PARAPHRASES} of {MIN_PARAPHRASE_NEEDS} are needed)")
        return _defaults(base, report, why)
    questions = [h.question for h in items]
    candidates = search(questions, np.stack([vectors[q] for q in questions]))
    settings = [s.apply(base) for s in GRID]
    hit = np.zeros((len(GRID), len(items)), dtype=bool)
    gain = np.zeros((len(GRID), len(items)), dtype=np.float32)
    for fold in sorted({h.fold for h in items}):
        out = {h.question for h in items if h.fold == fold}
        tuning = _fold_tuning([m for m in memories if m.question not in out], vectors, center_prior, titles)
        if tuning is not None:
            tuning.prepare(np.stack([vectors[h.question] for h in items if h.fold == fold]))
        variants = [tuning.with_params(p) if tuning is not None else None for p in settings]
        for i, item in enumerate(items):
            if item.fold != fold:
                continue
            vector = vectors[item.question]
            for c, variant in enumerate(variants):
                ranked = variant.rerank(vector, candidates[i]) if variant is not None else candidates[i]
                rank = _rank_of(item.target, ranked)
                hit[c, i] = rank == 1
                gain[c, i] = 0.0 if rank is None else 1.0 / math.log2(rank + 1)
    return _choose(base, settings, hit, gain, np.asarray([h.paraphrase for h in items]), report, started)


def _choose(
    base: MemoryParams, settings: list[MemoryParams], hit: np.ndarray, gain: np.ndarray,
    paraphrase: np.ndarray, report: dict[str, Any], started: float,
) -> Calibration:
    d = GRID.index(DEFAULT)
    n = hit.shape[1]
    harm = ~paraphrase
    checked = int(np.sum(hit[d] & harm))
    report["harm_checked"] = checked
    best, best_key = d, (0, 0.0)
    for c in range(len(GRID) if checked >= MIN_HARM_CHECKED else 0):
        gained = int(np.sum(hit[c] & ~hit[d]))
        lost = int(np.sum(~hit[c] & hit[d]))
        net = gained - lost
        harm_lost = int(np.sum(~hit[c] & hit[d] & harm))
        clear = net >= MIN_NET and net >= 2.0 * math.sqrt(gained + lost)
        if not clear or harm_lost > 0 or gain[c].mean() < gain[d].mean() - 1e-9:
            continue
        key = (net, float(gain[c].mean()))
        if key > best_key:
            best, best_key = c, key
    def scores(c: int) -> dict[str, float]:
        return {"hit@1": round(float(hit[c].mean()), 4), "ndcg@10": round(float(gain[c].mean()), 4)}
    report.update(
        default=scores(d), chosen=scores(best), n=n,
        gained=int(np.sum(hit[best] & ~hit[d])), lost=int(np.sum(~hit[best] & hit[d])),
        seconds=round(time.perf_counter() - started, 3), setting=GRID[best].describe(),
    )
    evidence = (f"{report['folds']} folds, {n} held-out question(s), {report['paraphrases']} of them paraphrases "
                f"of {report['paraphrase_needs']} need(s) with other feedback")
    if checked < MIN_HARM_CHECKED:
        why = (f"too few questions held out whole that were answered right before ({checked}; at least "
               f"{MIN_HARM_CHECKED}) to show that another setting costs nothing to needs without feedback")
        report.update(status="defaults", reason=why, note=f"calibration: kept the safe defaults — {why} ({evidence})")
        return Calibration(base, report)
    if best == d:
        report.update(status="defaults", reason="no setting of the grid ranks the held-out questions clearly better",
                      note=f"calibration: kept the safe defaults — no setting ranks held-out feedback clearly better "
                           f"({evidence}; hit@1 {report['default']['hit@1']:.3f})")
        return Calibration(base, report)
    chosen = settings[best]
    report.update(status="chosen", reason="clearly better on held-out feedback",
                  values={k: chosen.as_dict()[k] for k in ("tau", "tau_vote", "title_margin", "scale")},
                  note=f"calibration: {GRID[best].describe()} (τ {chosen.tau:.2f}, 👍 {chosen.tau_vote:.2f}) — "
                       f"{evidence}: hit@1 {report['default']['hit@1']:.3f} → {report['chosen']['hit@1']:.3f}, "
                       f"nDCG@10 {report['default']['ndcg@10']:.3f} → {report['chosen']['ndcg@10']:.3f} "
                       f"(+{report['gained']}/−{report['lost']} question(s))")
    return Calibration(chosen, report)
