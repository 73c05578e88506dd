"""Retrieval: top-k documents from chunks, the tuning hook, the LangChain retriever."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from retrieval.ranking import fold_to_documents, merge_hits
from retrieval.retriever import AskloopRetriever
from retrieval.search import EmptyKnowledgeBase, KnowledgeBase, QuestionError, check_question
from retrieval.store import ChunkMatch
from retrieval.tuning import NoTuning, Tuning
from retrieval.types import Chunk, Hit
from tests.conftest import TINY_CORPUS


def match(doc_id: str, chunk_id: str, score: float, text: str = "") -> ChunkMatch:
    return ChunkMatch(Chunk(chunk_id, doc_id, text or chunk_id, doc_id.title(), f"/{doc_id}.md"), score)


def test_fold_keeps_each_documents_best_chunk() -> None:
    hits = fold_to_documents(
        [match("a", "a1", 0.5), match("b", "b1", 0.7), match("a", "a2", 0.9, "best of a"), match("a", "a3", 0.2)]
    )
    assert [(h.doc_id, h.score, h.passage, h.chunk_id) for h in hits] == [
        ("a", 0.9, "best of a", "a2"),
        ("b", 0.7, "b1", "b1"),
    ]
    assert all(h.base_score == h.score for h in hits)


def test_merge_hits_adds_only_new_documents() -> None:
    a, b = Hit("a", "A", "/a", 0.9, "pa"), Hit("b", "B", "/b", 0.5, "pb")
    merged = merge_hits([a], [Hit("a", "A", "/a", 0.1, "other"), b])
    assert merged == [a, b]


def test_search_returns_top_k_documents_best_first(tiny_services) -> None:
    result = tiny_services.knowledge_base.search("How do I connect to the VPN?", k=3)
    assert len(result.hits) == 3
    assert result.hits[0].doc_id == "vpn"
    assert result.hits[0].passage == TINY_CORPUS[0]["text"]
    assert result.hits[0].title == "Connecting to the VPN"
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert 0.3 < scores[0] <= 1.0
    assert len({h.doc_id for h in result.hits}) == 3
    assert result.tuning_version is None
    assert result.vector.shape == (tiny_services.embedder.dimension,)

    everything = tiny_services.knowledge_base.search("laptop", k=50).hits
    assert {h.doc_id for h in everything} == {d["_id"] for d in TINY_CORPUS}


def test_multi_chunk_document_is_one_hit_with_its_best_passage(services, tmp_path: Path) -> None:
    path = tmp_path / "handbook.md"
    path.write_text(
        "# Handbook\n\n## Parking\n\nCars park in the underground garage, level -2.\n\n"
        "## Coffee\n\nThe espresso machine is descaled every Monday.\n\n"
        "## Printing\n\nPrinters are on the third floor next to the kitchen.\n",
        encoding="utf-8",
    )
    services.ingestor.run([path])
    [hit] = services.knowledge_base.search("Where can I park my car?", k=5).hits
    assert hit.doc_id == str(path.resolve())
    assert hit.section == "Handbook › Parking"
    assert hit.passage.startswith("Cars park")


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "the question is empty"),
        ("   \n\t ", "the question is empty"),
        ("x" * 50_000, "the question is too long (50,000 characters; the limit is 2,000)"),
    ],
)
def test_bad_questions(tiny_services, question: str, message: str) -> None:
    with pytest.raises(QuestionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_services.knowledge_base.search(question)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        # what a terminal passes on for bytes that are not UTF-8 (Python's surrogateescape)
        ("Wie beantrage ich \udcfcberstunden?", "the question is not valid text"),
        ("holidays\ud83d?", "the question is not valid text"),
        ("How do I\x00 request holidays?", "the question contains a control character (U+0000)"),
        ("\x1b[31mHow do I request holidays?", "the question contains a control character (U+001B)"),
        ("holidays\x9b2J", "the question contains a control character (U+009B)"),
    ],
)
def test_undecodable_bytes_and_control_characters_are_refused(question: str, message: str) -> None:
    with pytest.raises(QuestionError, match=re.escape(message)):
        check_question(question, 2000)


def test_layout_characters_in_a_question_are_whitespace() -> None:
    assert check_question(" How do I\r\nrequest\tholidays?\x0c\x0b ", 2000) == "How do I\nrequest\tholidays?"


def test_empty_knowledge_base(services) -> None:
    with pytest.raises(EmptyKnowledgeBase, match="askloop ingest"):
        services.knowledge_base.search("anything?")


class BoostDeploy:
    """A tuning that puts `deploy` first, finds `laptop` on demand and adds a passage of its own."""

    version = 7

    def __init__(self) -> None:
        self.seen_queries: list[np.ndarray] = []

    def search_query(self, question: str, query: np.ndarray) -> np.ndarray:
        self.seen_queries.append(query)
        return query

    def extra_doc_ids(self, query: np.ndarray) -> list[str]:
        return ["laptop"]

    def extra_hits(self, query: np.ndarray) -> list[Hit]:
        return [Hit("correction:1", "Corrected answer", "feedback", 0.1, "Use the new VPN app.")]

    def rerank(self, query: np.ndarray, hits: list[Hit]) -> list[Hit]:
        boosted = [h.rescored(h.score + 1.0, "test boost") if h.doc_id == "deploy" else h for h in hits]
        return sorted(boosted, key=lambda h: h.score, reverse=True)


def test_tuning_hook_rescoring_candidates_and_extra_passages(tiny_services) -> None:
    tuning = BoostDeploy()
    assert isinstance(tuning, Tuning) and isinstance(NoTuning(), Tuning)
    result = tiny_services.knowledge_base.search("How do I connect to the VPN?", k=10, tuning=tuning)
    ids = [h.doc_id for h in result.hits]
    assert ids[0] == "deploy"
    assert result.hits[0].reasons == ("test boost",)
    assert result.hits[0].base_score < result.hits[0].score
    assert "laptop" in ids and "correction:1" in ids
    assert result.tuning_version == 7
    assert len(tuning.seen_queries) == 1


def test_extra_doc_ids_reach_documents_plain_search_missed(services, tmp_path: Path) -> None:
    # Many near-identical documents push the target out of the candidate pool of a k=1 search.
    from tests.support.retrieval import write_corpus

    records = [{"_id": f"n{i}", "title": "Network", "text": f"VPN connection guide number {i}."} for i in range(80)]
    records.append({"_id": "cake", "title": "Birthday cake", "text": "The team orders a cake for birthdays."})
    services.ingestor.run([write_corpus(tmp_path / "corpus.jsonl", records)])
    plain = services.knowledge_base.search("VPN connection guide", k=1)
    assert plain.hits[0].doc_id != "cake"

    class FindCake(NoTuning):
        def extra_doc_ids(self, query):
            return ["cake"]

        def rerank(self, query, hits):
            return sorted(hits, key=lambda h: h.doc_id != "cake")

    tuned = services.knowledge_base.search("VPN connection guide", k=1, tuning=FindCake())
    assert tuned.hits[0].doc_id == "cake"
    assert tuned.hits[0].passage == "The team orders a cake for birthdays."


def test_search_vector_matches_search(tiny_services) -> None:
    kb: KnowledgeBase = tiny_services.knowledge_base
    question = "When can I deploy?"
    by_text = kb.search(question, k=3)
    by_vector = kb.search_vector(question, kb.embed_question(question), k=3)
    assert [h.doc_id for h in by_vector.hits] == [h.doc_id for h in by_text.hits]
    assert by_text.hits[0].doc_id == "deploy"


def test_langchain_retriever_returns_documents_with_metadata(tiny_services) -> None:
    retriever = AskloopRetriever(knowledge_base=tiny_services.knowledge_base, k=2)
    documents = retriever.invoke("How many days do I have to submit expenses?")
    assert len(documents) == 2
    assert all(isinstance(d, Document) for d in documents)
    first = documents[0]
    assert first.page_content == TINY_CORPUS[1]["text"]
    assert first.metadata["doc_id"] == "expenses"
    assert first.metadata["title"] == "Submitting expenses"
    assert first.metadata["source"].endswith("corpus.jsonl#expenses")
    assert first.metadata["rank"] == 1 and documents[1].metadata["rank"] == 2
    assert first.metadata["score"] >= documents[1].metadata["score"]


def test_langchain_retriever_accepts_a_tuning_factory(tiny_services) -> None:
    retriever = AskloopRetriever(knowledge_base=tiny_services.knowledge_base, k=1, tuning=BoostDeploy)
    [document] = retriever.invoke("How do I connect to the VPN?")
    assert document.metadata["doc_id"] == "deploy"
    assert document.metadata["tuning_version"] == 7


def test_search_result_carries_the_raw_question_vector_not_the_transformed_query(tiny_services) -> None:
    class Negated(NoTuning):
        def search_query(self, question: str, query: np.ndarray) -> np.ndarray:
            return -query

    kb: KnowledgeBase = tiny_services.knowledge_base
    question = "How do I connect to the VPN?"
    result = kb.search(question, k=3, tuning=Negated())
    np.testing.assert_allclose(result.vector, kb.embed_question(question), atol=1e-6)
