"""Server mode for real: a `chroma run` server behind ASKLOOP_CHROMA_URL, and what happens when
it goes away mid-run (answers fail politely, feedback is still recorded, recovery is automatic).
"""

from __future__ import annotations

import uuid

import pytest


pytestmark = pytest.mark.slow


@pytest.fixture()
def server_services(chroma_server, home, monkeypatch, embedder, tiny_corpus):
    """Services pointed at the Chroma server (own collection per test), tiny corpus ingested."""
    from bot.services import Services
    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_CHROMA_URL", chroma_server.url)
    monkeypatch.setenv("ASKLOOP_COLLECTION", f"ops-{uuid.uuid4().hex[:10]}")
    services = Services(load_settings())
    report = services.ingestor.run([tiny_corpus])
    assert report.chunks_added == 6
    return services


def test_server_mode_ingests_and_answers_through_the_http_client(
    server_services, chroma_server, tiny_corpus
):
    import chromadb

    from retrieval.store import ChunkStore

    store = server_services.store
    assert isinstance(store, ChunkStore)
    assert store._client.get_settings().chroma_api_impl == "chromadb.api.fastapi.FastAPI"
    assert server_services.settings.chroma_url == chroma_server.url

    answer = server_services.loop.answer("how do I connect to the VPN?", asker="UASK", origin="test").answer
    assert not answer.abstained
    assert answer.hits[0].doc_id == "vpn"
    assert "WireGuard" in answer.text

    # The chunks live on the server, not in the local data dir: a second client sees them.
    other = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
    collection = other.get_collection(server_services.settings.collection)
    assert collection.count() == store.count() == 6
    assert not server_services.settings.chroma_path.exists()

    # Keyword scores come from the server's chunks too, and a replica rebuilds them after an
    # ingest made elsewhere (the change mark lives in the collection's metadata on the server).
    from bot.services import Services

    replica = Services(server_services.settings)
    replica.knowledge_base.lexical.refresh_seconds = 0.0
    assert replica.knowledge_base.keyword_scores("WireGuard").by_doc == {"vpn": pytest.approx(1.0)}
    assert replica.knowledge_base.keyword_scores("kombucha").by_doc == {}
    marked = store.generation()
    extra = tiny_corpus.parent / "extra.jsonl"
    extra.write_text('{"_id": "kitchen", "title": "Kitchen", "text": "Kombucha is in the fridge."}\n')
    server_services.ingestor.run([extra])
    assert store.generation() not in (None, marked)
    replica.knowledge_base.keyword_scores("kombucha")  # notices the change, rebuilds in the background
    replica.knowledge_base.lexical.wait(30)
    assert replica.knowledge_base.keyword_scores("kombucha").by_doc == {"kitchen": pytest.approx(1.0)}


def test_chroma_down_fails_politely_keeps_feedback_and_recovers(
    server_services, chroma_server, postgres_url, monkeypatch
):
    from bot.services import Services
    from bot.settings import load_settings
    from feedback.store import FeedbackStore
    from retrieval.store import StoreUnavailable
    from tests.support.ops import scratch_database

    with scratch_database(postgres_url) as url:
        FeedbackStore(url).upgrade()  # what the compose file's `migrate` service does
        monkeypatch.setenv("ASKLOOP_DATABASE_URL", url)
        services = Services(load_settings())  # the bot: Chroma server + PostgreSQL
        loop = services.loop
        before = loop.answer("when is the on-call handover?", asker="UASK", origin="test")
        answer_id = before.answer_id

        chroma_server.stop()
        try:
            with pytest.raises(StoreUnavailable) as failure:
                loop.answer("how do I submit expenses?", asker="UASK", origin="test")
            message = str(failure.value)
            assert "vector store" in message and "Chroma" in message
            assert "Traceback" not in message and "\n" not in message

            # Feedback does not need the vector store: votes and corrections still land.
            outcome = loop.vote(answer_id, "UVOTER", +1, source="test")
            assert outcome.counted
            correction = loop.suggest_correction(answer_id, "UVOTER", text="Handover is in #ops.")
            assert correction.status == "pending"
        finally:
            chroma_server.start()

        # Same port, same path: the service recovers by itself, data intact.
        after = loop.answer("how do I submit expenses?", asker="UASK", origin="test").answer
        assert after.hits[0].doc_id == "expenses"
        assert not after.abstained
        votes = loop.store.training.feedback().votes
        assert [(v.user, v.value) for v in votes] == [("UVOTER", 1)]
        # The failed question recorded nothing; the two answered ones are there.
        assert [a.question for a in loop.store.answers.recent()] == [after.question, before.answer.question]
        loop.close()


def test_bot_starting_while_chroma_is_down_recovers_when_it_comes_up(
    chroma_server, home, monkeypatch, embedder
):
    """A replica that starts before the Chroma server is up keeps trying instead of dying."""
    from bot.services import Services
    from bot.settings import load_settings
    from retrieval.store import StoreUnavailable

    monkeypatch.setenv("ASKLOOP_CHROMA_URL", chroma_server.url)
    monkeypatch.setenv("ASKLOOP_COLLECTION", f"ops-{uuid.uuid4().hex[:10]}")
    services = Services(load_settings())
    chroma_server.stop()
    try:
        with pytest.raises(StoreUnavailable, match="cannot reach the Chroma server"):
            services.loop.answer("anything?", asker="UASK", origin="test")
    finally:
        chroma_server.start()
    assert services.store.count() == 0  # opened now that the server is back
