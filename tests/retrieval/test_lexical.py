"""Hybrid retrieval: BM25 keyword scores beside the vector search, kept in step with ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval import search
from retrieval.lexical import LexicalIndex, LexicalIndexCache
from retrieval.search import KnowledgeBase


def test_keyword_scores_are_per_document_best_chunk_scaled_to_the_best_match() -> None:
    index = LexicalIndex(
        [
            ("r1", "refunds", "Refunds", "A refund is paid within 14 days of the return."),
            ("r2", "refunds", "Refunds", "Gift cards are never refunded."),
            ("s1", "shipping", "Shipping", "Parcels ship within two days."),
            ("t1", "returns", "Returns", "Return the parcel with the label inside."),
        ]
    )
    assert len(index) == 4
    assert index.chunk_ids("refunds") == ["r1", "r2"] and index.chunk_ids("gone") == []
    assert index.titles == {"refunds": "Refunds", "shipping": "Shipping", "returns": "Returns"}
    scores = index.scores("How long until my refunds are paid?").by_doc
    assert max(scores.values()) == pytest.approx(1.0)
    assert scores["refunds"] == pytest.approx(1.0)  # stemmed: "refunds" matches "refund"
    assert "shipping" not in scores  # no shared word, no score
    assert index.scores("How long until my refunds are paid?").best(1) == ["refunds"]


def test_questions_without_indexed_words_get_no_keyword_scores() -> None:
    index = LexicalIndex([("a1", "a", "", "Parcels ship within two days.")])
    assert index.scores("what is it?").by_doc == {}  # stop words only
    assert index.scores("zebra").by_doc == {}
    assert LexicalIndex([]).scores("parcels").by_doc == {}


def test_an_index_saved_before_titles_were_kept_is_built_again(tiny_services) -> None:
    kb = tiny_services.knowledge_base
    assert kb.document_titles()["vpn"] == "Connecting to the VPN"
    saved = tiny_services.settings.home / "keywords" / tiny_services.store.name / tiny_services.store.generation()
    chunks = saved / "chunks.json"
    chunks.write_text(json.dumps(json.loads(chunks.read_text())[:2]))  # as an earlier release saved it
    with pytest.raises(ValueError, match="before keyword indexes kept document titles"):
        LexicalIndex.load(saved)
    later = LexicalIndexCache(tiny_services.store, cache_dir=tiny_services.settings.home / "keywords")
    assert later.index().titles == kb.document_titles()
    assert len(json.loads(chunks.read_text())) == 3  # saved again, with the titles


def test_keyword_bonus_is_added_to_the_vector_score(tiny_services) -> None:
    kb = tiny_services.knowledge_base
    question = "pager handover"
    kb.lexical_weight = 0.0
    vector_only = {h.doc_id: h.score for h in kb.search(question, k=6).hits}
    kb.lexical_weight = 0.2
    keywords = kb.keyword_scores(question).by_doc
    assert keywords == {"oncall": pytest.approx(1.0)}
    hybrid = {h.doc_id: h for h in kb.search(question, k=6).hits}
    assert hybrid["oncall"].score == pytest.approx(vector_only["oncall"] + 0.2, abs=1e-5)
    assert hybrid["oncall"].base_score == hybrid["oncall"].score  # the base index's own score
    assert all(hybrid[d].score == pytest.approx(vector_only[d], abs=1e-5) for d in vector_only if d != "oncall")


def test_a_document_only_the_keywords_found_joins_with_its_vector_score(tiny_services, monkeypatch) -> None:
    kb = tiny_services.knowledge_base
    question = "When can I take a vacation? Fridays"  # about holidays; only `deploy` says "Fridays"
    kb.lexical_weight = 0.0
    vector_only = {h.doc_id: h.score for h in kb.search(question, k=6).hits}
    assert max(vector_only, key=vector_only.get) != "deploy"
    monkeypatch.setattr(search, "MIN_CANDIDATE_CHUNKS", 1)  # the vector search returns one chunk
    monkeypatch.setattr(search, "CHUNKS_PER_DOC", 1)
    kb.lexical_weight = 1.0
    assert kb.keyword_scores(question).by_doc == {"deploy": pytest.approx(1.0)}
    filtered = []
    query = tiny_services.store.query
    monkeypatch.setattr(
        tiny_services.store, "query", lambda e, n, doc_ids=None: filtered.append(doc_ids) or query(e, n, doc_ids)
    )
    (hit,) = kb.search(question, k=1).hits
    assert hit.doc_id == "deploy"
    # read by id from what the keyword index knows, scored exactly as the vector search scores
    assert hit.score == pytest.approx(vector_only["deploy"] + 1.0, abs=1e-5)
    assert filtered == [None]  # no search filtered to documents


def test_a_candidate_the_keyword_index_does_not_know_yet_is_still_scored(tiny_services, monkeypatch, tmp_path) -> None:
    from retrieval.tuning import NoTuning

    class WantsKitchen(NoTuning):
        def extra_doc_ids(self, query):  # type: ignore[no-untyped-def]
            return ["kitchen"]

        def rerank(self, query, hits):  # type: ignore[no-untyped-def]
            return sorted(hits, key=lambda h: h.doc_id != "kitchen")

    kb = tiny_services.knowledge_base
    kb.lexical_weight = 0.05
    kb.lexical.refresh_seconds = 3600
    kb.search("VPN", k=1)  # the keyword index is built now, without the kitchen
    extra = tmp_path / "extra" / "corpus.jsonl"
    extra.parent.mkdir()
    extra.write_text(json.dumps({"_id": "kitchen", "title": "Kitchen", "text": "Kombucha is in the fridge."}) + "\n")
    tiny_services.ingestor.run([extra])
    assert kb.lexical.current().chunk_ids("kitchen") == []
    vector_only = {h.doc_id: h.score for h in KnowledgeBase(tiny_services.store, tiny_services.embedder).search("VPN", k=7).hits}
    monkeypatch.setattr(search, "MIN_CANDIDATE_CHUNKS", 1)  # the vector search returns one chunk
    monkeypatch.setattr(search, "CHUNKS_PER_DOC", 1)
    filtered = []
    query = tiny_services.store.query
    monkeypatch.setattr(
        tiny_services.store, "query", lambda e, n, doc_ids=None: filtered.append(doc_ids) or query(e, n, doc_ids)
    )
    (hit,) = kb.search("VPN", k=1, tuning=WantsKitchen()).hits
    assert hit.doc_id == "kitchen"
    assert hit.score == pytest.approx(vector_only["kitchen"], abs=1e-5)
    assert filtered == [None, ["kitchen"]]  # the index does not know it: a search filtered to it


def test_vectors_only_when_the_weight_is_zero(tiny_services) -> None:
    kb = tiny_services.knowledge_base
    kb.lexical_weight = 0.0
    assert kb.keyword_scores("pager handover").by_doc == {}
    hits = kb.search("pager handover", k=3).hits
    assert all(h.score == h.base_score for h in hits)


def test_ingest_marks_a_change_and_other_processes_rebuild_their_keyword_index(
    tiny_services, tmp_path: Path
) -> None:
    from bot.services import Services

    store = tiny_services.store
    first = store.generation()
    assert first is not None
    tiny_services.ingestor.run([tmp_path / "tiny" / "corpus.jsonl"])  # nothing changed
    assert store.generation() == first

    reader = Services(tiny_services.settings)  # another process on the same data dir
    reader.knowledge_base.lexical.refresh_seconds = 0.0
    assert reader.knowledge_base.keyword_scores("kombucha").by_doc == {}

    extra = tmp_path / "extra" / "corpus.jsonl"
    extra.parent.mkdir()
    extra.write_text(json.dumps({"_id": "kitchen", "title": "Kitchen", "text": "Kombucha is in the fridge."}) + "\n")
    tiny_services.ingestor.run([extra])
    assert store.generation() != first
    # The change is noticed; until the rebuild (in the background) is done the old index serves.
    assert reader.knowledge_base.keyword_scores("kombucha").by_doc == {}
    reader.knowledge_base.lexical.wait(30)
    assert reader.knowledge_base.keyword_scores("kombucha").by_doc == {"kitchen": pytest.approx(1.0)}
    assert reader.knowledge_base.search("where is the kombucha?", k=1).hits[0].doc_id == "kitchen"


def test_a_failed_rebuild_keeps_the_old_index(tiny_services, monkeypatch) -> None:
    cache = LexicalIndexCache(tiny_services.store, refresh_seconds=0.0)
    first = cache.index()
    monkeypatch.setattr(tiny_services.store, "generation", lambda: "moved")
    monkeypatch.setattr(tiny_services.store, "searchable_texts", lambda: (_ for _ in ()).throw(RuntimeError("down")))
    assert cache.index() is first
    cache.wait(30)
    assert cache.index() is first  # still the old one; the next check tries again


def test_the_index_is_reread_only_after_refresh_seconds(tiny_services) -> None:
    calls = []
    store = tiny_services.store
    original = store.generation

    def counted() -> str | None:
        calls.append(1)
        return original()

    store.generation = counted  # type: ignore[method-assign]
    cache = LexicalIndexCache(store, refresh_seconds=3600)
    first = cache.index()
    assert cache.index() is first and len(calls) == 1
    cache.invalidate()
    assert cache.index() is first and len(calls) == 2  # same generation: not rebuilt


def test_a_server_builds_the_keyword_index_before_the_first_question(tiny_services, caplog) -> None:
    from bot.commands.serve import _prepare_keywords

    kb = tiny_services.knowledge_base
    kb.lexical_weight = 0.0
    kb.prepare_keywords()
    assert kb.lexical.current() is None  # vectors only: nothing to build
    kb.lexical_weight = 0.05
    _prepare_keywords(kb)
    assert kb.lexical.current() is not None and len(kb.lexical.current()) == 6

    class Down:
        def prepare_keywords(self) -> None:
            raise RuntimeError("Chroma is not up")

    _prepare_keywords(Down())  # logged, not raised: the first question builds it instead
    assert "could not build the keyword index yet" in caplog.text


def test_the_next_process_loads_the_saved_keyword_index_instead_of_reading_every_chunk(
    tiny_services, tmp_path: Path, monkeypatch
) -> None:
    from bot.services import Services

    first = tiny_services.knowledge_base
    first.lexical_weight = 0.05
    expected = first.keyword_scores("pager handover").by_doc
    generation = tiny_services.store.generation()
    saved = tiny_services.settings.home / "keywords" / tiny_services.store.name / generation
    assert (saved / "chunks.json").is_file()

    later = Services(tiny_services.settings)  # a one-shot `askloop ask`, say
    monkeypatch.setattr(later.store, "searchable_texts", lambda: pytest.fail("read every chunk"))
    assert later.knowledge_base.keyword_scores("pager handover").by_doc == pytest.approx(expected)
    assert later.knowledge_base.lexical.current().chunk_ids("oncall") == first.lexical.current().chunk_ids("oncall")
    assert later.knowledge_base.document_titles() == first.document_titles() != {}
    monkeypatch.undo()

    # A new generation is built, saved, and the older one removed.
    extra = tmp_path / "extra" / "corpus.jsonl"
    extra.parent.mkdir()
    extra.write_text(json.dumps({"_id": "kitchen", "title": "Kitchen", "text": "Kombucha is in the fridge."}) + "\n")
    tiny_services.ingestor.run([extra])
    newer = Services(tiny_services.settings).knowledge_base
    assert newer.keyword_scores("kombucha").by_doc == {"kitchen": pytest.approx(1.0)}
    assert newer.document_titles()["kitchen"] == "Kitchen"
    assert [p.name for p in saved.parent.iterdir()] == [tiny_services.store.generation()]


def test_a_damaged_saved_index_is_rebuilt_from_the_store(tiny_services) -> None:
    from bot.services import Services

    tiny_services.knowledge_base.keyword_scores("pager")
    saved = tiny_services.settings.home / "keywords" / tiny_services.store.name / tiny_services.store.generation()
    (saved / "chunks.json").write_text("not json")
    later = Services(tiny_services.settings).knowledge_base
    assert later.keyword_scores("pager handover").by_doc == {"oncall": pytest.approx(1.0)}
    assert json.loads((saved / "chunks.json").read_text())  # saved again, whole
