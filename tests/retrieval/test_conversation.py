"""Follow-ups read with their conversation: the rule on two searches, and the handbook's threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval.conversation import (
    MARGIN,
    REFERS_BACK_MARGIN,
    TOPIC_CHARS,
    Turn,
    choose,
    fuse,
    read_in_context,
    refers_back,
    topic_of,
)
from retrieval.search import SearchResult
from retrieval.types import Hit
from tests.support.conversations import FOLLOW_UPS, TOPIC_CHANGES, handbook_services

THRESHOLD = 0.35


def result(question: str, *scored: tuple[str, float]) -> SearchResult:
    hits = [Hit(doc, doc.title(), f"{doc}.md", score, f"passage of {doc}") for doc, score in scored]
    return SearchResult(question, np.zeros(4, dtype=np.float32), hits, None)


def test_same_document_the_follow_up_alone_when_it_can_answer():
    alone, fused = result("when do I get paid back?", ("expenses", 0.45)), result("f", ("expenses", 0.9))
    assert choose(alone, fused, threshold=THRESHOLD, leans_back=False)[0] is False
    vague = result("how long is it valid?", ("vpn", 0.28), ("holidays", 0.19))
    assert choose(vague, result("f", ("vpn", 0.92)), threshold=THRESHOLD, leans_back=True)[0] is True


def test_a_clear_preference_of_the_follow_up_alone_is_a_new_topic():
    # alone: expenses 0.92, vpn (the fused search's choice) not even returned -> its last hit, 0.09
    alone = result("how do I submit expenses?", ("expenses", 0.92), ("holidays", 0.25), ("laptop", 0.09))
    fused = result("f", ("vpn", 0.66), ("expenses", 0.6))
    use, why = choose(alone, fused, threshold=THRESHOLD, leans_back=False)
    assert use is False and "new topic" in why


def test_the_margin_is_wider_for_a_follow_up_that_refers_back():
    gap = (MARGIN + REFERS_BACK_MARGIN) / 2
    alone = result("is it paid?", ("expenses", 0.47), ("oncall", 0.47 - gap))
    fused = result("f", ("oncall", 0.6), ("expenses", 0.4))
    assert choose(alone, fused, threshold=THRESHOLD, leans_back=False)[0] is False
    assert choose(alone, fused, threshold=THRESHOLD, leans_back=True)[0] is True


@pytest.mark.parametrize("text, expected", [
    ("how long is it valid?", True), ("and on my phone?", True), ("what about meals", True),
    ("can I carry them over?", True), ("is it paid?", True), ("thanks, and taxis?", True),
    ("how do I submit expenses?", False), ("who carries the pager this week?", False),
    ("when do I get a new laptop?", False),
])
def test_refers_back(text, expected):
    assert refers_back(text) is expected


def test_the_topic_is_the_latest_search_and_stays_short():
    first = Turn("how do I connect to the VPN?", "how do I connect to the VPN?")
    second = Turn("how long is it valid?", "how do I connect to the VPN? how long is it valid?")
    assert fuse("and on my phone?", [first, second]) == \
        "how do I connect to the VPN? how long is it valid? and on my phone?"
    long = Turn("and after that?", "x " * TOPIC_CHARS)
    assert topic_of([first, long]) == "how do I connect to the VPN? and after that?"


@pytest.fixture(scope="module")
def handbook(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    services: Any = handbook_services(Path(tmp_path_factory.mktemp("handbook")) / "home", embedder)
    yield services.knowledge_base


def first_turn(kb: Any, question: str) -> Turn:
    searched = kb.search(question, 5)
    return Turn(question, searched.question, searched.hits[0].passage, searched.hits[0].score < THRESHOLD)


@pytest.mark.parametrize("topic, follow_up, phrase", FOLLOW_UPS)
def test_context_dependent_follow_ups_are_answered_from_the_threads_topic(handbook, topic, follow_up, phrase):
    read = read_in_context(handbook, follow_up, [first_turn(handbook, topic)], 5, None, THRESHOLD)
    best = read.result.hits[0]
    assert phrase in best.passage and best.score >= THRESHOLD, (read.why, best)
    if read.fused:
        assert read.topic == topic and read.result.question == f"{topic} {follow_up}"


def test_the_vpn_follow_up_alone_would_abstain(handbook):
    """What the issue saw: alone, "how long is it valid?" is below the answer threshold."""
    alone = handbook.search("how long is it valid?", 5)
    assert alone.hits[0].score < THRESHOLD
    read = read_in_context(handbook, "how long is it valid?", [first_turn(handbook, "how do I connect to the VPN?")],
                           5, None, THRESHOLD)
    assert read.fused and "expire after 90 days" in read.result.hits[0].passage


@pytest.mark.parametrize("topic, follow_up, document", TOPIC_CHANGES)
def test_a_new_question_in_the_thread_leaves_the_topic(handbook, topic, follow_up, document):
    read = read_in_context(handbook, follow_up, [first_turn(handbook, topic)], 5, None, THRESHOLD)
    assert not read.fused and read.result.question == follow_up, read.why
    assert read.result.hits[0].doc_id.endswith(document)
