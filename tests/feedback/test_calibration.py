"""Calibration on the team's own feedback: each test fails when its rule breaks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from feedback.calibration import DEFAULT, GRID, MIN_PARAPHRASES, Memo, calibrate, held_out, targets
from feedback.learning import LearningEngine, LearningParams
from retrieval.learned import LearnedTuning, MemoryParams
from retrieval.types import Hit
from tests.support.learning import correction, feedback, hits, vote

DIM = 128


def world(needs: int, phrasings: int, closeness: float, seed: int = 3) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """`needs` information needs with `phrasings` questions each; two phrasings of a need have a
    cosine of about `closeness`, questions of different needs about 0."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    vectors, found = {}, {}
    a = np.sqrt(closeness)
    for i in range(needs):
        for j in range(phrasings):
            noise = rng.normal(size=DIM)
            noise -= (noise @ basis[i]) * basis[i]
            noise /= np.linalg.norm(noise)
            v = a * basis[i] + np.sqrt(1 - a * a) * noise
            question = f"need {i} phrasing {j}"
            vectors[question] = (v / np.linalg.norm(v)).astype(np.float32)
            found[question] = f"doc{i}"
    return vectors, found


def search_with_target_second(found: dict[str, str], margin: float, easy: bool = True):  # type: ignore[no-untyped-def]
    """Base candidates: the question's document just `margin` behind a distractor; with `easy`,
    questions of needs held out whole have their document first by far (answered right before)."""
    whole = {h.question for h in held_out(found, ()) if not h.paraphrase} if easy else set()

    def search(questions: Sequence[str], vectors: np.ndarray) -> list[list[Hit]]:
        out = []
        for q in questions:
            target = found.get(q, "doc0")
            scores = {"distractor": 0.60, target: 0.60 - margin} if q not in whole else {target: 0.9, "distractor": 0.6}
            scores |= {f"filler{k}": 0.30 + 0.01 * k for k in range(15)}
            out.append(hits(**scores))
        return out

    return search


def memos(found: dict[str, str]) -> list[Memo]:
    return [Memo(q, d, 3.0, False) for q, d in found.items()]  # one approved correction per phrasing


def test_one_phrasing_per_need_keeps_the_defaults_and_says_why() -> None:
    vectors, found = world(needs=30, phrasings=1, closeness=0.5)
    result = calibrate(memos(found), found, vectors, MemoryParams(), search_with_target_second(found, 0.01),
                       center_prior=20)
    assert result.params == MemoryParams()
    assert result.report["status"] == "defaults"
    assert "one phrasing per need" in result.line


def test_too_few_paraphrases_keep_the_defaults() -> None:
    vectors, found = world(needs=2, phrasings=3, closeness=0.5)
    assert 2 * 3 < MIN_PARAPHRASES
    result = calibrate(memos(found), found, vectors, MemoryParams(), search_with_target_second(found, 0.01),
                       center_prior=20)
    assert result.params == MemoryParams() and "too few" in result.line


def test_without_a_knowledge_base_to_rank_on_the_defaults_stay() -> None:
    vectors, found = world(needs=10, phrasings=3, closeness=0.5)
    result = calibrate(memos(found), found, vectors, MemoryParams(), None, center_prior=20)
    assert result.params == MemoryParams() and result.report["status"] == "defaults"


def test_paraphrases_beyond_the_default_reach_choose_a_longer_reach_within_bounds() -> None:
    vectors, found = world(needs=80, phrasings=3, closeness=0.5)
    result = calibrate(memos(found), found, vectors, MemoryParams(), search_with_target_second(found, 0.002),
                       center_prior=20)
    report = result.report
    assert report["status"] == "chosen", report
    assert result.params.tau < MemoryParams().tau and result.params.tau >= 0.3
    assert report["chosen"]["hit@1"] > report["default"]["hit@1"]
    assert report["gained"] - report["lost"] >= 3
    assert report["folds"] == 5 and report["n"] == 240 and 60 <= report["paraphrases"] < 180  # some needs whole
    assert report["harm_checked"] >= 100
    assert "hit@1" in result.line and "folds" in result.line


def test_too_few_questions_to_rule_out_harm_keep_the_defaults() -> None:
    vectors, found = world(needs=80, phrasings=3, closeness=0.5)
    result = calibrate(memos(found), found, vectors, MemoryParams(),
                       search_with_target_second(found, 0.002, easy=False), center_prior=20)
    assert result.params == MemoryParams() and result.report["harm_checked"] == 0
    assert "needs without feedback" in result.line


def test_a_gain_the_defaults_already_have_keeps_the_defaults() -> None:
    vectors, found = world(needs=80, phrasings=3, closeness=0.9)  # near-repeats: within every reach
    result = calibrate(memos(found), found, vectors, MemoryParams(), search_with_target_second(found, 0.002),
                       center_prior=20)
    assert result.report["status"] == "defaults"
    assert result.report["chosen"] == result.report["default"]
    assert "no setting" in result.line


def test_a_needs_phrasings_are_spread_over_folds_and_a_repeated_question_sits_in_one() -> None:
    _, found = world(needs=6, phrasings=5, closeness=0.5)
    items = held_out(found, golden=[("a golden paraphrase", ["doc1"]), ("need 0 phrasing 0", ["doc0"])])
    by_need: dict[str, set[int]] = {}
    for item in items:
        if item.fold >= 0:
            by_need.setdefault(item.target, set()).add(item.fold)
    spread = {i.target for i in items if i.paraphrase and i.fold >= 0}
    assert spread and all(len(by_need[need]) == 5 for need in spread)  # one phrasing per fold
    assert all(len(folds) == 1 for need, folds in by_need.items() if need not in spread)  # held out whole
    assert len(by_need) == 6
    assert len({i.question for i in items}) == len(items)  # each question held out once
    golden = [i for i in items if i.fold == -1]
    assert [g.question for g in golden] == ["a golden paraphrase"] and golden[0].paraphrase  # feedback's own: no


def test_targets_prefer_the_approved_correction_over_the_shown_top_document() -> None:
    fb = feedback(
        [vote(1, "q1", "ann", +1, "wiki"), vote(2, "q2", "bob", -1, "wiki"), vote(3, "q3", "cy", +1, "vpn")],
        [correction(1, "q2", "bob", "sso"), correction(2, "q3", "cy", "guide")],
    )
    assert targets(fb) == {"q1": "wiki", "q2": "sso", "q3": "guide"}


def test_the_grid_starts_at_the_defaults_and_stays_within_its_bounds() -> None:
    assert GRID[0] == DEFAULT and DEFAULT.apply(MemoryParams()) == MemoryParams()
    for setting in GRID:
        params = setting.apply(MemoryParams())
        assert 0.3 <= params.tau <= 0.8 and 0.45 <= params.tau_vote <= 0.85 and params.scale <= 6.0
        assert params.tau_negative == MemoryParams().tau_negative  # a 👎 keeps its near-repeat reach
    # A title rule turned off by the team stays off.
    assert all(s.apply(MemoryParams(title_margin=2.0)).title_margin == 2.0 for s in GRID)


def test_with_params_ranks_exactly_as_a_tuning_built_with_those_params() -> None:
    vectors, found = world(needs=5, phrasings=3, closeness=0.5)
    questions = sorted(found)
    matrix = np.stack([vectors[q] for q in questions])
    titles = np.stack([vectors[f"need {i} phrasing 0"] for i in range(5)])

    def build(params: MemoryParams) -> LearnedTuning:
        return LearnedTuning(version=None, params=params, questions=matrix,
                             memory_question=np.arange(len(questions)), memory_doc=[found[q] for q in questions],
                             memory_weight=np.full(len(questions), 3.0, np.float32),
                             title_docs=[f"doc{i}" for i in range(5)], title_vectors=titles)

    base = build(MemoryParams())
    query = vectors["need 2 phrasing 1"]
    base.adjustments(query)  # fills the shared products
    for params in (MemoryParams(tau=0.3, scale=6.0), MemoryParams(title_margin=2.0), MemoryParams(title_margin=0.05)):
        assert base.with_params(params).adjustments(query) == build(params).adjustments(query)
    # Similarities prepared for many questions at once give the same adjustments.
    prepared = build(MemoryParams(tau=0.3))
    prepared.prepare(matrix)
    for q in questions:
        fast, plain = prepared.adjustments(vectors[q]), build(MemoryParams(tau=0.3)).adjustments(vectors[q])
        assert fast.keys() == plain.keys() and all(abs(fast[d] - plain[d]) < 1e-5 for d in fast)


def test_the_proposal_records_the_calibration_in_its_diff_and_summary() -> None:
    vectors, found = world(needs=80, phrasings=3, closeness=0.5)

    class Encoder:
        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return np.stack([vectors[t] for t in texts])

    fb = feedback(corrections=[correction(i, q, f"user{i}", d) for i, (q, d) in enumerate(sorted(found.items()))])
    engine = LearningEngine(Encoder(), LearningParams(), search=search_with_target_second(found, 0.002))
    proposal = engine.build(fb)
    calibration = proposal.diff["calibration"]
    assert calibration["status"] == "chosen"
    assert proposal.payload["params"]["tau"] == calibration["values"]["tau"]
    assert calibration["note"] in proposal.summary
    off = LearningEngine(Encoder(), LearningParams(calibrate=False), search=search_with_target_second(found, 0.002))
    assert "calibration" not in off.build(fb).diff


def test_the_encoders_reach_keeps_its_title_rule_when_calibration_turns_it_off_for_memories() -> None:
    vectors, found = world(needs=5, phrasings=3, closeness=0.5)
    questions = sorted(found)
    titles = np.stack([vectors[f"need {i} phrasing 0"] for i in range(5)])
    tuning = LearnedTuning(version=None, params=MemoryParams(title_margin=2.0), questions=np.stack([vectors[q] for q in questions]),
                           memory_question=np.arange(len(questions)), memory_doc=[found[q] for q in questions],
                           memory_weight=np.full(len(questions), 3.0, np.float32),
                           title_docs=[f"doc{i}" for i in range(5)], title_vectors=titles, encoder_title_margin=0.0)
    query = vectors["need 2 phrasing 1"]
    assert tuning.explained(query) is None  # memories: rule off
    reach = tuning._encoder_explained(query)
    assert reach is not None and not reach.all()  # the encoder's reach: rule on
