"""The answer use case with a thread as context, and corrections with their provenance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedback.errors import InvalidFeedback
from tests.support.conversations import handbook_services

VPN = "how do I connect to the VPN?"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    services: Any = handbook_services(Path(tmp_path_factory.mktemp("loop")) / "home", embedder)
    services.feedback_store  # the schema, created on first use
    yield services
    services.loop.close()


def ask(loop: Any, question: str, earlier: list[Any] = (), **kwargs: Any) -> Any:  # type: ignore[assignment]
    answered = loop.answer(question, asker="UASKER", origin="slack_thread", channel="C1", thread_ts="1.000001",
                           earlier=earlier, **kwargs)
    return answered.answer, loop.get_answer(answered.answer_id)


def test_a_follow_up_is_searched_with_the_thread_and_recorded_as_searched(services):
    loop = services.loop
    _, first = ask(loop, VPN)
    answer, record = ask(loop, "how long is it valid?", [first])
    assert "expire after 90 days" in answer.text and not answer.abstained
    assert record.question == f"{VPN} how long is it valid?"  # what retrieval searched
    assert record.asked == record.as_asked == "how long is it valid?"  # what was written
    assert record.context_answer_id == first.id
    assert answer.question == "how long is it valid?" and answer.extras["read_with"] == VPN
    assert record.shown[0].doc_id.endswith("vpn.md")


def test_a_question_on_a_new_topic_is_recorded_as_asked(services):
    loop = services.loop
    _, first = ask(loop, VPN)
    answer, record = ask(loop, "how do I submit expenses?", [first])
    assert record.question == "how do I submit expenses?" and record.asked is None
    assert record.context_answer_id is None and "read_with" not in answer.extras
    assert record.shown[0].doc_id.endswith("expenses.md")


def test_feedback_on_a_follow_up_teaches_the_question_that_was_searched(services):
    loop = services.loop
    _, first = ask(loop, VPN)
    _, follow_up = ask(loop, "how long is it valid?", [first])
    loop.vote(follow_up.id, "UVOTER", 1, source="slack_reaction")
    taught = [v for v in loop.store.training.feedback().votes if v.answer_id == follow_up.id]
    assert [v.question for v in taught] == [f"{VPN} how long is it valid?"]


class RecordingChatModel:
    """A chat model that answers from a script and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def invoke(self, messages: Any) -> Any:
        from langchain_core.messages import AIMessage

        self.sent.append(messages)
        return AIMessage("They expire after 90 days [1].")


def test_a_chat_model_gets_the_thread(services):
    from feedback.loop import FeedbackLoop

    model = RecordingChatModel()
    loop = FeedbackLoop(services.feedback_store, services.knowledge_base, services.config, chat_model=model)
    _, first = ask(services.loop, VPN)
    answer, _ = ask(loop, "how long is it valid?", [first])
    assert answer.generated_by == "llm"
    (messages,) = model.sent
    kinds = [m.type for m in messages]
    assert kinds == ["system", "human", "ai", "human"]
    assert messages[1].content == VPN and "WireGuard" in messages[2].content
    assert messages[3].content.endswith("Question: how long is it valid?")
    assert "expire after 90 days" in messages[3].content  # the passages found with the thread's topic


def test_a_correction_keeps_its_provenance(services):
    loop = services.loop
    _, record = ask(loop, "where do I order business cards?")
    link = "https://team.slack.com/archives/C1/p1000002?thread_ts=1.000001"
    correction = loop.suggest_correction(record.id, "UEXPERT", text="Ask the office manager in #office.",
                                         origin="slack_thread", permalink=link)
    stored = loop.correction(correction.id)
    assert (stored.origin, stored.permalink, stored.user) == ("slack_thread", link, "UEXPERT")
    (event,) = [e for e in loop.audit(action="correction.suggest") if e.object_id == str(correction.id)]
    assert event.after["permalink"] == link and event.after["origin"] == "slack_thread"
    with pytest.raises(InvalidFeedback, match="link"):
        loop.suggest_correction(record.id, "UEXPERT", text="x", permalink="javascript:alert(1)")
    assert loop.suggest_correction(record.id, "U2", text="y").origin == "cli"
