"""The wiring: settings become the loop's configuration, and answers take the configured path."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from retrieval.answer import NO_MATCH
from tests.conftest import TINY_CORPUS


class Recorder(BaseCallbackHandler):
    """Keeps every prompt a chat model was started with."""

    def __init__(self) -> None:
        self.prompts: list[list[Any]] = []

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.prompts.extend(messages)


def test_an_injected_chat_model_writes_the_answers(settings, embedder, tiny_corpus) -> None:
    from bot.services import Services

    recorder = Recorder()
    model = GenericFakeChatModel(messages=iter([AIMessage("File them within 30 days [1].")]), callbacks=[recorder])
    services = Services(settings, chat_model=model)
    services.ingestor.run([tiny_corpus])

    answer = services.loop.answer("How long do I have to submit expenses?", asker="U1", origin="cli").answer
    assert answer.text == "File them within 30 days [1]."
    assert answer.generated_by == "llm" and services.generates
    assert answer.hits[0].doc_id == "expenses"
    assert TINY_CORPUS[1]["text"] in recorder.prompts[0][1].content

    abstained = services.loop.answer("zxqv wpfl grrk?", asker="U1", origin="cli").answer  # below the threshold
    assert abstained.abstained and abstained.text == NO_MATCH
    assert len(recorder.prompts) == 1  # the model was not asked again


@pytest.mark.parametrize("threshold", [0.2, 0.9])
def test_threshold_setting_decides_abstention(monkeypatch, home, embedder, tiny_corpus, threshold) -> None:
    from bot.services import Services
    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_ANSWER_THRESHOLD", str(threshold))
    services = Services(load_settings())
    services.ingestor.run([tiny_corpus])
    answer = services.loop.answer("How do I connect to the VPN?", asker="U1", origin="cli").answer
    assert answer.abstained is (threshold == 0.9)
    assert answer.hits[0].doc_id == "vpn"


def test_settings_become_the_loop_configuration(monkeypatch, home) -> None:
    from bot.services import Services, loop_config
    from bot.settings import load_settings

    for name, value in {"MODERATORS": "U1,U2", "VOTE_LIMIT_PER_HOUR": "7", "GATE_TOLERANCE": "0.1",
                        "TUNE_QUERY_ENCODER": "false", "TITLE_MARGIN": "0.2", "TOP_K": "3"}.items():
        monkeypatch.setenv(f"ASKLOOP_{name}", value)
    config = loop_config(load_settings(), local_owner="ada")
    assert config.moderators == frozenset({"U1", "U2"}) and config.local_owner == "ada" and config.top_k == 3
    assert config.policy.max_votes_per_hour == 7 and config.gate.tolerance == 0.1
    assert not config.learning.encoder.enabled and config.learning.memory.title_margin == 0.2
    services = Services(load_settings())
    assert services.loop.is_moderator("U2") and not services.loop.is_moderator("ada")
