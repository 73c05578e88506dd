"""The knowledge-gap report: voted abstentions and 👎 without a correction, grouped by similarity."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from feedback.gaps import group_gaps
from feedback.records import GapSignal
from tests.support.feedback import MODERATOR, hits

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
MODEL = "test-model@4"


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def signal(answer_id: int, question: str, vector: np.ndarray | None, *, asker: str = "U1", minutes: int = 0,
           down: int = 1, up: int = 0, abstained: bool = True) -> GapSignal:
    return GapSignal(answer_id=answer_id, question=question, asker=asker, asked_at=T0 + timedelta(minutes=minutes),
                     abstained=abstained, up=up, down=down, question_vector=vector,
                     vector_model=MODEL if vector is not None else None)


def test_similar_questions_form_one_gap_and_the_biggest_comes_first() -> None:
    flights = [
        signal(1, "Can I fly business class?", unit(1, 0.1, 0, 0), asker="U1"),
        signal(2, "may I book business class flights", unit(1, 0.15, 0.05, 0), asker="U2", minutes=5),
        signal(3, "business class for long flights?", unit(0.95, 0.2, 0, 0.05), asker="U1", minutes=9),
    ]
    parking = [signal(4, "Where do I park my car?", unit(0, 0, 1, 0), asker="U3", minutes=2, up=1, down=0)]
    report = group_gaps(flights + parking, similarity=0.9)
    assert [g.questions for g in report.gaps] == [3, 1]
    first = report.gaps[0]
    assert first.askers == 2 and first.down == 3 and first.abstained == 3
    assert first.last_asked == T0 + timedelta(minutes=9)
    assert first.question in {s.question for s in flights}
    assert set(first.examples) | {first.question} == {s.question for s in flights}
    assert sorted(first.answer_ids) == [1, 2, 3]
    assert report.gaps[1].question == "Where do I park my car?" and report.gaps[1].up == 1
    assert report.questions == 4


def test_questions_without_a_vector_are_grouped_by_their_words() -> None:
    report = group_gaps([
        signal(1, "Parking at the office?", None),
        signal(2, "parking at the office", None, minutes=1),
        signal(3, "Bike storage?", None, minutes=2),
        signal(4, "bike storage", unit(1, 0, 0, 0), minutes=3),  # a vector: grouped with vectors, not text
    ])
    assert sorted(g.questions for g in report.gaps) == [1, 1, 2]


def test_unlike_questions_stay_apart_and_an_empty_report_is_empty() -> None:
    report = group_gaps([signal(1, "a", unit(1, 0, 0, 0)), signal(2, "b", unit(0, 1, 0, 0))], similarity=0.7)
    assert len(report.gaps) == 2
    assert group_gaps([]).gaps == [] and group_gaps([]).questions == 0


def record(store, question: str, *, abstained: bool, vector: np.ndarray | None = None, asker: str = "U_ASKER"):
    return store.answers.record(question=question, asker=asker, origin="slack", hits=hits("vpn", "laptop"),
                                answer_text="…", abstained=abstained, tuning_version=None,
                                question_vector=vector, vector_model=MODEL if vector is not None else None)


def test_the_loop_reports_voted_abstentions_and_uncorrected_down_votes(loop, store) -> None:
    v = unit(1, 0, 0, 0)
    voted_abstention = record(store, "Can I fly business class?", abstained=True, vector=v)
    loop.vote(voted_abstention.id, "U1", 1)  # "right, you don't know": still a gap
    down_on_answer = record(store, "may I fly business class", abstained=False, vector=unit(1, 0.1, 0, 0))
    loop.vote(down_on_answer.id, "U2", -1)
    liked = record(store, "How do I connect to the VPN?", abstained=False, vector=unit(0, 1, 0, 0))
    loop.vote(liked.id, "U2", 1)  # a good answer is no gap
    silent = record(store, "unvoted abstention", abstained=True, vector=unit(0, 0, 1, 0))  # nobody voted: no signal
    corrected = record(store, "corrected question", abstained=True, vector=unit(0, 0, 0, 1))
    loop.vote(corrected.id, "U3", -1)
    store.corrections.suggest(corrected.id, "U3", text="It is in the travel policy.", source_ref=None)
    flagged = record(store, "a troll's question", abstained=True, vector=unit(0, 0.7, 0.7, 0))
    loop.vote(flagged.id, "U_TROLL", -1)
    loop.flag("U_TROLL", MODERATOR, "brigading")

    report = loop.knowledge_gaps()
    assert [(g.questions, set(g.answer_ids)) for g in report.gaps] == [(2, {voted_abstention.id, down_on_answer.id})]
    assert silent.id not in report.gaps[0].answer_ids and report.days == loop.config.gap_days
    figures = loop.gauges()
    assert figures["knowledge_gaps"] == 1.0 and figures["knowledge_gap_questions"] == 2.0


def test_a_rejected_correction_leaves_the_gap_open_and_old_questions_age_out(loop, store) -> None:
    a = record(store, "Is there a gym?", abstained=True)
    loop.vote(a.id, "U1", -1)
    fix = store.corrections.suggest(a.id, "U1", text="There is none.", source_ref=None)
    assert loop.knowledge_gaps().gaps == []  # a pending correction addresses it
    loop.decide(f"c{fix.id}", MODERATOR, False)
    assert [g.question for g in loop.knowledge_gaps().gaps] == ["Is there a gym?"]
    assert loop.knowledge_gaps(now=datetime.now(timezone.utc) + timedelta(days=40)).gaps == []


def test_abstention_votes_never_reach_learning(loop, store) -> None:
    a = record(store, "Can I fly business class?", abstained=True)
    loop.vote(a.id, "U1", 1)
    assert store.training.feedback().votes == []


@pytest.mark.slow
def test_paraphrases_asked_for_real_become_one_gap(tiny_services) -> None:
    """Through the real model: the vectors stored with each answer group paraphrases."""
    loop = tiny_services.loop
    asked = ["Can I bring my dog to the office?", "Are dogs allowed in the office?",
             "Is my dog allowed at work?", "What is the wifi password for guests?"]
    for number, question in enumerate(asked):
        answered = loop.answer(question, asker=f"U{number}", origin="test")
        assert answered.answer.abstained, question
        loop.vote(answered.answer_id, f"U{number}", -1)
    report = loop.knowledge_gaps()
    assert [g.questions for g in report.gaps] == [3, 1]
    assert "dog" in report.gaps[0].question.lower() and report.gaps[0].askers == 3
