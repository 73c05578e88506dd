"""Answer text: extractive by default, a (fake, offline) chat model when configured."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel

from retrieval.answer import NO_MATCH, PASSAGE_CHARS, extractive_answer, llm_answer, source_label, trim_passage
from retrieval.types import Hit
from tests.conftest import TINY_CORPUS

LONG = " ".join(
    f"Sentence {i} of the handbook explains one rule about the release process in some detail."
    for i in range(40)
)


def hit(doc_id: str, score: float, passage: str = "A short passage.") -> Hit:
    return Hit(doc_id, doc_id.title(), f"/kb/{doc_id}.md", score, passage, base_score=score)


class Recorder(BaseCallbackHandler):
    """Keeps every prompt a chat model was started with."""

    def __init__(self) -> None:
        self.prompts: list[list[Any]] = []

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        self.prompts.extend(messages)


def test_trim_keeps_short_text_and_normalises_spaces() -> None:
    assert trim_passage("  One   sentence.\n\n\n\nTwo.  ") == "One sentence.\n\nTwo."


def test_trim_cuts_at_a_sentence_end() -> None:
    trimmed = trim_passage(LONG)
    assert len(trimmed) <= PASSAGE_CHARS
    assert trimmed.endswith("detail.")
    assert LONG.startswith(trimmed)
    assert len(trimmed) > PASSAGE_CHARS - 100  # not cut needlessly early


def test_trim_without_sentence_ends_cuts_at_a_word_with_ellipsis() -> None:
    text = "word " * 300
    trimmed = trim_passage(text, 100)
    assert trimmed.endswith("word…") and len(trimmed) <= 101


def test_extractive_answer_quotes_the_best_passage_with_numbered_sources() -> None:
    hits = [hit("release", 0.8, LONG), hit("other", 0.5)]
    answer = extractive_answer("How do releases work?", hits, threshold=0.35)
    assert not answer.abstained
    assert answer.text.endswith("[1]") and "[2]" not in answer.text
    assert answer.text.startswith("Sentence 0 of the handbook")
    assert len(answer.text) <= PASSAGE_CHARS + 4
    data = answer.as_dict()
    assert set(data) == {"answer", "sources", "abstained"}
    assert [s["doc_id"] for s in data["sources"]] == ["release", "other"]
    assert set(data["sources"][0]) == {"doc_id", "title", "source", "score", "passage"}
    assert len(data["sources"][0]["passage"]) <= PASSAGE_CHARS


def test_second_passage_only_when_nearly_as_good() -> None:
    hits = [hit("a", 0.70, "First answer."), hit("b", 0.69, "Second answer.")]
    answer = extractive_answer("q", hits, threshold=0.35)
    assert answer.text == "First answer. [1]\n\nSecond answer. [2]"


def test_abstains_below_threshold_and_keeps_closest_sources() -> None:
    hits = [hit("a", 0.30), hit("b", 0.20)]
    answer = extractive_answer("What is the airspeed of a swallow?", hits, threshold=0.35)
    assert answer.abstained
    assert answer.text == NO_MATCH
    assert [h.doc_id for h in answer.hits] == ["a", "b"]
    assert answer.as_dict()["abstained"] is True
    assert extractive_answer("q", [], 0.35).abstained


def test_llm_answer_gets_the_passages_and_question() -> None:
    recorder = Recorder()
    model = FakeListChatModel(responses=["Use WireGuard [1]."], callbacks=[recorder])
    hits = [hit("vpn", 0.7, TINY_CORPUS[0]["text"]), hit("laptop", 0.5, TINY_CORPUS[4]["text"])]
    answer = llm_answer(model, "How do I connect to the VPN?", hits, threshold=0.35, tuning_version=3)
    assert answer.text == "Use WireGuard [1]."
    assert (answer.abstained, answer.generated_by, answer.tuning_version) == (False, "llm", 3)
    [prompt] = recorder.prompts
    system, human = prompt
    assert "ONLY the numbered passages" in system.content
    assert "[1] Vpn\n" + TINY_CORPUS[0]["text"] in human.content
    assert "[2] Laptop\n" + TINY_CORPUS[4]["text"] in human.content
    assert human.content.endswith("Question: How do I connect to the VPN?")


def test_llm_is_never_called_when_abstaining() -> None:
    recorder = Recorder()
    model = FakeListChatModel(responses=["should not appear"], callbacks=[recorder])
    answer = llm_answer(model, "Unrelated?", [hit("a", 0.1)], threshold=0.35)
    assert answer.abstained and answer.text == NO_MATCH
    assert recorder.prompts == []


def test_a_failing_chat_model_falls_back_to_the_extractive_answer() -> None:
    def network_down():
        raise ConnectionError("network is unreachable")
        yield  # pragma: no cover  (makes this a generator)

    model = GenericFakeChatModel(messages=network_down())
    hits = [hit("vpn", 0.7, TINY_CORPUS[0]["text"])]
    answer = llm_answer(model, "How do I connect to the VPN?", hits, threshold=0.35)
    assert answer.generated_by == "extractive" and not answer.abstained
    assert answer.text == TINY_CORPUS[0]["text"] + " [1]"
    assert answer.extras["llm_error"] == "ConnectionError: network is unreachable"


def test_an_unusable_llm_setting_is_one_line(home, embedder, tiny_corpus, monkeypatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from tests.support.retrieval import drop_leaked_log_handlers

    drop_leaked_log_handlers()
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(tiny_corpus)]).exit_code == 0
    monkeypatch.setenv("ASKLOOP_LLM", "no-such-provider:model-x")
    result = runner.invoke(app, ["ask", "How do I connect to the VPN?"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot set up the chat model 'no-such-provider:model-x' (ASKLOOP_LLM)")
    assert len(result.stderr.strip().splitlines()) == 1


# -- answer text keeps its Markdown structure ---------------------------------------------------

TABLE = "| Country | Days | Notes |\n| --- | --- | --- |\n" + "\n".join(
    f"| Country {i} | {20 + i} | Carry-over allowed until the end of March, row {i} |" for i in range(30)
)
CODE = "```python\ndef rotate(token):\n    if token.expired:\n        return renew(token)\n    return token\n```"


def blocks_of(text: str) -> list[str]:
    from retrieval.markdown_blocks import parse

    return [b.kind for b in parse(text)]


def test_a_table_is_shown_by_whole_rows_with_its_header() -> None:
    passage = trim_passage(f"Leave days per country:\n\n{TABLE}")
    lines = passage.split("\n")
    assert lines[:4] == ["Leave days per country:", "", *TABLE.split("\n")[:2]]
    rows = [line for line in lines if line.startswith("| Country ")]
    assert rows and all(row in TABLE.split("\n") for row in rows)  # never a row cut in half
    assert len(rows) < 30 and passage.endswith("\n\n…")
    assert blocks_of(passage) == ["paragraph", "table", "paragraph"]


def test_a_code_block_keeps_its_fences_and_indentation() -> None:
    text = f"Rotate   the token like this:\n\n{CODE}\n\nThen restart the agent."
    assert trim_passage(text) == f"Rotate the token like this:\n\n{CODE}\n\nThen restart the agent."
    long_code = "```sh\n" + "\n".join(f"    step --number {i} --verbose" for i in range(60)) + "\n```"
    trimmed = trim_passage(long_code)
    assert trimmed.startswith("```sh\n    step --number 0 --verbose\n") and "\n```\n\n…" in trimmed
    assert blocks_of(trimmed) == ["fence", "paragraph"]


def test_list_items_are_whole() -> None:
    items = "\n".join(f"- Item {i} explains one step of the release process in a few words." for i in range(20))
    trimmed = trim_passage(f"Steps:\n\n{items}")
    shown = [line for line in trimmed.split("\n") if line.startswith("- ")]
    assert shown and all(line in items.split("\n") for line in shown)
    assert trimmed.endswith("\n\n…")


def test_a_chunk_cut_inside_a_code_block_is_closed_again() -> None:
    """Stores written before chunks kept code whole can hold a chunk that opens a fence and
    stops: the passage shown closes it, so the rest of the answer is not swallowed as code."""
    trimmed = trim_passage("Run:\n\n```sh\nmake install\nmake test")
    assert trimmed == "Run:\n\n```sh\nmake install\nmake test\n```"


def test_the_citation_never_breaks_a_table_or_a_fence() -> None:
    answer = extractive_answer("q", [hit("code", 0.8, f"Rotate the token:\n\n{CODE}")], threshold=0.35)
    assert answer.text == f"Rotate the token:\n\n{CODE}\n\n[1]"
    answer = extractive_answer("q", [hit("prose", 0.8, "Just a sentence.")], threshold=0.35)
    assert answer.text == "Just a sentence. [1]"


def test_source_label_says_the_title_once() -> None:
    def labelled(title: str, section: str) -> str:
        return source_label(Hit("d", title, "/kb/d.md", 0.5, "p", section=section))

    assert labelled("Holidays", "Holidays › Sick leave") == "Holidays › Sick leave"
    assert labelled("Holidays", "Holidays") == "Holidays"
    assert labelled("Holidays", "") == "Holidays"
    assert labelled("Travel policy", "Travel › Hotels") == "Travel policy › Travel › Hotels"
    assert labelled("Backup policy", "page 2") == "Backup policy › page 2"
