"""The ingest pipeline against a real embedded Chroma store and the real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import retrieval.ingest as ingest_module
from retrieval.chunking import Chunker
from retrieval.store import StoreUnavailable
from retrieval.types import Chunk
from tests.conftest import TINY_CORPUS
from tests.support.retrieval import write_corpus, write_pdf


def all_chunks(store) -> dict[str, Chunk]:
    return {c.chunk_id: c for c in store.get_chunks(sorted(store.document_index()))}


def snapshot(store) -> dict[str, tuple[str, str, str]]:
    return {i: (c.doc_id, c.text, c.fingerprint) for i, c in all_chunks(store).items()}


@pytest.fixture()
def mixed_folder(tmp_path: Path) -> Path:
    """One file of every supported kind, plus a binary and a non-UTF-8 file."""
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "guide.md").write_text(
        "# Onboarding\n\nWelcome.\n\n## Accounts\n\nAsk IT for a laptop.\n\n## Payroll\n\nPaid monthly.\n",
        encoding="utf-8",
    )
    (folder / "notes.txt").write_text("The office closes at 19:00 on Fridays.\n", encoding="utf-8")
    (folder / "travel.html").write_text(
        "<html><head><title>Travel policy</title></head><body><h1>Travel</h1>"
        "<p>Fly economy on trips under six hours.</p></body></html>",
        encoding="utf-8",
    )
    write_pdf(folder / "backups.pdf", [["Backups run nightly at 02:00."]], title="Backup policy")
    write_corpus(folder / "faq" / "corpus.jsonl", TINY_CORPUS)
    (folder / "blob.txt").write_bytes(b"\x7fELF\x00\x00\x01binary")
    (folder / "old.md").write_bytes("R\xe9sum\xe9 of the old process".encode("latin-1"))
    return folder


def test_ingest_every_kind_with_metadata_and_counts(services, mixed_folder: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = services.ingestor.run([mixed_folder], progress=lambda d, t: calls.append((d, t)))

    assert report.files == 5
    assert report.documents_added == 4 + len(TINY_CORPUS)
    assert report.documents_updated == report.documents_skipped == 0
    problems = {Path(p.path).name: p.reason for p in report.problems}
    assert problems == {
        "blob.txt": "binary file, not text",
        "old.md": "not UTF-8 text (bad byte at offset 1)",
    }
    assert not report.nothing_ingested

    chunks = all_chunks(services.store)
    assert len(chunks) == report.chunks_added == services.store.count()
    assert calls[0] == (0, len(chunks)) and calls[-1] == (len(chunks), len(chunks))

    guide = str((mixed_folder / "guide.md").resolve())
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunks.values():
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    assert {c.section for c in by_doc[guide]} == {"Onboarding", "Onboarding › Accounts", "Onboarding › Payroll"}
    assert all(c.title == "Onboarding" and c.source == guide for c in by_doc[guide])
    [pdf] = by_doc[str((mixed_folder / "backups.pdf").resolve())]
    assert (pdf.title, pdf.section) == ("Backup policy", "page 1")
    [html] = by_doc[str((mixed_folder / "travel.html").resolve())]
    assert (html.title, html.section, html.text) == ("Travel policy", "Travel", "Fly economy on trips under six hours.")
    [vpn] = by_doc["vpn"]  # BEIR _id is the document id
    corpus = (mixed_folder / "faq" / "corpus.jsonl").resolve()
    assert (vpn.title, vpn.source, vpn.origin) == ("Connecting to the VPN", f"{corpus}#vpn", str(corpus))
    # nothing from the failed files
    assert not any(c.source.endswith(("blob.txt", "old.md")) for c in chunks.values())


def test_reingest_unchanged_changes_nothing(services, mixed_folder: Path) -> None:
    services.ingestor.run([mixed_folder])
    before = snapshot(services.store)
    report = services.ingestor.run([mixed_folder])
    assert report.documents_skipped == len({c[0] for c in before.values()})
    assert report.documents_added == report.documents_updated == 0
    assert report.chunks_added == report.chunks_updated == report.chunks_removed == 0
    assert snapshot(services.store) == before


def test_changed_file_replaces_its_chunks(services, tmp_path: Path) -> None:
    path = tmp_path / "policy.md"
    long_text = "\n\n".join(f"## Rule {i}\n\nRule {i} says something different." for i in range(6))
    path.write_text(f"# Policy\n\n{long_text}\n", encoding="utf-8")
    services.ingestor.run([path])
    assert services.store.count() == 6

    path.write_text("# Policy\n\n## Rule 0\n\nOnly one rule is left now.\n", encoding="utf-8")
    report = services.ingestor.run([path])
    assert (report.documents_updated, report.chunks_updated, report.chunks_removed) == (1, 1, 5)
    [chunk] = all_chunks(services.store).values()
    assert chunk.text == "Only one rule is left now."
    assert services.store.count() == 1


def test_changed_corpus_entry_is_updated_others_skipped(services, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", TINY_CORPUS)
    services.ingestor.run([corpus])
    changed = [dict(d) for d in TINY_CORPUS]
    changed[0]["text"] = "The VPN now uses a new client called Tunnelblick."
    write_corpus(corpus, changed)
    report = services.ingestor.run([corpus])
    assert (report.documents_updated, report.documents_skipped) == (1, len(TINY_CORPUS) - 1)
    [vpn] = services.store.get_chunks(["vpn"])
    assert "Tunnelblick" in vpn.text


def test_prune_removes_deleted_files_and_dropped_entries(services, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "keep.md").write_text("# Keep\n\nThis stays.\n", encoding="utf-8")
    (folder / "gone.md").write_text("# Gone\n\nThis file will be deleted.\n", encoding="utf-8")
    corpus = write_corpus(folder / "corpus.jsonl", TINY_CORPUS)
    services.ingestor.run([folder])
    (folder / "gone.md").unlink()
    write_corpus(corpus, [d for d in TINY_CORPUS if d["_id"] != "deploy"])

    report = services.ingestor.run([folder])  # without --prune nothing goes
    assert report.documents_removed == 0
    assert str((folder / "gone.md").resolve()) in services.store.document_index()

    report = services.ingestor.run([folder], prune=True)
    assert report.documents_removed == 2
    assert report.chunks_removed == 2
    docs = set(services.store.document_index())
    assert "deploy" not in docs and str((folder / "gone.md").resolve()) not in docs
    assert str((folder / "keep.md").resolve()) in docs and "vpn" in docs


def test_prune_follows_the_corpus_file_even_when_sources_are_urls(services, tmp_path: Path) -> None:
    records = [
        {"_id": "w1", "title": "Wiki one", "text": "First wiki page.", "url": "https://wiki.example/1"},
        {"_id": "w2", "title": "Wiki two", "text": "Second wiki page.", "url": "https://wiki.example/2"},
    ]
    corpus = write_corpus(tmp_path / "wiki.jsonl", records)
    services.ingestor.run([corpus])
    write_corpus(corpus, records[:1])
    report = services.ingestor.run([corpus], prune=True)
    assert report.documents_removed == 1
    assert set(services.store.document_index()) == {"w1"}


def test_a_failed_file_leaves_no_chunks_and_nothing_ingested_is_flagged(services, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00\x00garbage")
    report = services.ingestor.run([bad, tmp_path / "missing.md"])
    assert report.nothing_ingested
    assert [Path(p.path).name for p in report.problems] == ["missing.md", "bad.txt"]
    assert services.store.count() == 0


def test_store_failure_mid_write_leaves_the_old_state(services, tmp_path: Path, monkeypatch) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", TINY_CORPUS)
    services.ingestor.run([corpus])
    before = snapshot(services.store)

    changed = [dict(d, text=d["text"] + " Updated.") for d in TINY_CORPUS[:3]] + TINY_CORPUS[3:]
    changed.append({"_id": "new", "title": "New", "text": "A brand new document."})
    write_corpus(corpus, changed)

    monkeypatch.setattr(ingest_module, "ENCODE_BATCH", 2)
    store = services.store
    real_upsert = store.upsert
    calls = {"n": 0}

    def flaky_upsert(chunks, vectors, staged=False):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreUnavailable("the vector store failed while writing chunks (test)")
        real_upsert(chunks, vectors, staged=staged)

    monkeypatch.setattr(store, "upsert", flaky_upsert)
    with pytest.raises(StoreUnavailable):
        services.ingestor.run([corpus])
    assert calls["n"] == 2
    assert snapshot(store) == before

    monkeypatch.setattr(store, "upsert", real_upsert)
    report = services.ingestor.run([corpus])
    assert (report.documents_updated, report.documents_added) == (3, 1)
    assert len(snapshot(store)) == len(TINY_CORPUS) + 1


def test_interrupt_while_embedding_rolls_back(services, tiny_corpus: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "ENCODE_BATCH", 2)
    embedder = services.ingestor.embedder
    real_encode = embedder.encode
    calls = {"n": 0}

    def interrupted(texts, batch_size=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_encode(texts, batch_size)

    monkeypatch.setattr(embedder, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        services.ingestor.run([tiny_corpus])
    assert services.store.count() == 0


def test_leftovers_of_a_killed_run_are_invisible_and_cleaned_up(services, tiny_corpus: Path) -> None:
    services.ingestor.run([tiny_corpus])
    [vpn] = services.store.get_chunks(["vpn"])
    stray = Chunk("stray", "vpn", "stale text", vpn.title, vpn.source, fingerprint="old", origin=vpn.origin, doc_chunks=2)
    services.store.upsert([stray], np.asarray([services.embedder.encode_one("stale text")]), staged=True)
    assert [c.chunk_id for c in services.store.get_chunks(["vpn"])] == [vpn.chunk_id]
    assert "stray" not in {m.chunk.chunk_id for m in services.store.query(services.embedder.encode_one("stale text"), 50)}
    entry = services.store.document_index()["vpn"]
    assert entry["fingerprint"] == vpn.fingerprint and "stray" in entry["chunk_ids"]

    report = services.ingestor.run([tiny_corpus])
    assert report.documents_skipped == len(TINY_CORPUS)
    assert services.store.document_index()["vpn"]["chunk_ids"] == [vpn.chunk_id]


def test_new_chunks_are_invisible_until_their_document_is_committed(services, tiny_corpus: Path) -> None:
    """Readers (this store, and a second client as another replica would have) see a document's
    old version, or its new one, never a mix, and never a new document before it is whole."""
    from bot.services import Services
    from retrieval.types import SourceDocument

    services.ingestor.run([tiny_corpus])
    store, chunker = services.store, Chunker(120, 20)
    changed = SourceDocument("vpn", "Connecting to the VPN", "vpn.md", "Use the new Tunnelblick app. " * 8, fingerprint="v2")
    added = SourceDocument("zebra", "Zebra crossings", "zebra.md", "Zebras cross at the stripes. " * 8, fingerprint="z1")
    new = chunker.split(changed) + chunker.split(added)
    assert len(new) > 4
    store.upsert(new, ingest_module.embed_chunks(services.embedder, new, 1.0), staged=True)
    replica = Services(services.settings).store
    for reader in (store, replica):
        question = services.embedder.encode_one("zebras cross at the stripes with Tunnelblick")
        shown = reader.query(question, 50) + reader.match_chunks(question, [c.chunk_id for c in new])
        assert {m.chunk.doc_id for m in shown} & {"zebra"} == set()
        assert [c.text for c in reader.get_chunks(["vpn", "zebra"])] == [TINY_CORPUS[0]["text"]]
        assert not any("Tunnelblick" in text or "Zebras" in text for *_, text in reader.searchable_texts())

    store.commit({"vpn": new[0].fingerprint, "zebra": new[-1].fingerprint})
    for reader in (store, replica):
        texts = {c.doc_id: c.text for c in reader.get_chunks(["vpn", "zebra"])}
        assert "Tunnelblick" in texts["vpn"] and "Zebras" in texts["zebra"]
        assert TINY_CORPUS[0]["text"] not in [c.text for c in reader.get_chunks(["vpn"])]  # old chunks hidden
        assert len(reader.get_chunks(["vpn", "zebra"])) == len(new)


def test_a_store_written_before_commit_records_keeps_working(services, tiny_corpus: Path) -> None:
    from retrieval.loaders import load_file

    documents = load_file(tiny_corpus.resolve()).documents
    chunks = [c for d in documents for c in services.chunker.split(d)]
    services.store.upsert(chunks, ingest_module.embed_chunks(services.embedder, chunks, 1.0))  # as it was written
    assert services.store.committed() == {}
    assert services.knowledge_base.search("How do I connect to the VPN?").hits[0].doc_id == "vpn"
    assert services.ingestor.run([tiny_corpus]).documents_skipped == len(TINY_CORPUS)  # nothing re-embedded

    changed = [dict(TINY_CORPUS[0], text="The VPN now uses Tunnelblick.")] + TINY_CORPUS[1:]
    write_corpus(tiny_corpus, changed)
    assert services.ingestor.run([tiny_corpus]).documents_updated == 1
    assert [c.text for c in services.store.get_chunks(["vpn"])] == ["The VPN now uses Tunnelblick."]
    assert set(services.store.committed()) == {"vpn"}


def test_kill_9_mid_ingest_never_shows_a_half_written_document(home: Path, embedder, tmp_path: Path, monkeypatch) -> None:
    """A real `askloop ingest` process killed while it writes: search shows every document in
    its old version (or not at all, if it is new), and the next ingest finishes the job, without
    embedding again what was written whole."""
    from bot.services import Services
    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_CHUNK_SIZE", "100")
    zebra = "\n\n".join(f"Zebra fact {i}: they cross roads on the white stripes {i}." for i in range(4))
    vpn = "\n\n".join(f"VPN step {i}: open Tunnelblick and pick the office {i} profile now." for i in range(3))
    # sources by URL: the same documents in two files are the same documents
    records = [dict(d, url=f"https://wiki.example/{d['_id']}") for d in TINY_CORPUS]
    first = write_corpus(tmp_path / "v1" / "corpus.jsonl", records)
    second = write_corpus(
        tmp_path / "v2" / "corpus.jsonl",
        [dict(records[0], text=vpn), *records[1:], {"_id": "zebra", "title": "Zebras", "text": zebra}],
    )
    marker = tmp_path / "stalled.json"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ingest_stall", str(marker), "2", str(first), str(second)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), process.stderr.read().decode() if process.poll() is not None else "no marker in time"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    written = set(json.loads(marker.read_text()))

    services = Services(load_settings())
    index = services.store.document_index()
    # the run stopped after writing zebra whole (4 chunks) and vpn's new version in part
    assert len(index["zebra"]["chunk_ids"]) == 4 and set(index["zebra"]["chunk_ids"]) <= written
    assert len(index["vpn"]["chunk_ids"]) > len(index["vpn"]["live_ids"]) and index["vpn"]["fingerprint"]
    for question in ("Where do zebras cross the road?", "How do I open Tunnelblick for the VPN?"):
        hits = services.knowledge_base.search(question, k=10).hits
        assert "zebra" not in {h.doc_id for h in hits}
        assert all("Tunnelblick" not in h.passage for h in hits)
    shown = services.store.get_chunks(["vpn", "zebra"])
    assert shown and all(c.doc_id == "vpn" and c.text in TINY_CORPUS[0]["text"] for c in shown)

    embedded: list[str] = []
    real_encode = services.embedder.encode
    monkeypatch.setattr(services.embedder, "encode", lambda texts, *a: embedded.extend(texts) or real_encode(texts, *a))
    report = services.ingestor.run([second])
    assert (report.documents_added, report.documents_updated) == (1, 1)
    assert embedded and not any("Zebra fact" in text for text in embedded)  # committed as written
    assert services.knowledge_base.search("Where do zebras cross the road?").hits[0].doc_id == "zebra"
    assert {c.text for c in services.store.get_chunks(["vpn"])} == set(vpn.split("\n\n"))
    assert all(sorted(e["chunk_ids"]) == sorted(e["live_ids"]) for e in services.store.document_index().values())


def test_duplicate_ids_across_corpus_files_are_reported(services, tmp_path: Path) -> None:
    first = write_corpus(tmp_path / "a" / "corpus.jsonl", TINY_CORPUS[:2])
    second = write_corpus(tmp_path / "b" / "corpus.jsonl", TINY_CORPUS[1:3])
    report = services.ingestor.run([first, second])
    assert report.documents_added == 3
    assert [p.reason for p in report.problems] == [f"duplicate document id {TINY_CORPUS[1]['_id']!r}"]


def test_report_as_dict_is_json(services, tiny_corpus: Path) -> None:
    data = json.loads(json.dumps(services.ingestor.run([tiny_corpus]).as_dict()))
    assert data["documents"]["added"] == len(TINY_CORPUS)
    assert data["chunks"]["added"] == len(TINY_CORPUS)
    assert data["problems"] == []


def test_document_missing_some_chunks_is_rewritten(services, tmp_path: Path) -> None:
    path = tmp_path / "steps.md"
    path.write_text("# Steps\n\n" + "\n\n".join(f"## Step {i}\n\nDo thing {i}." for i in range(4)), encoding="utf-8")
    services.ingestor.run([path])
    doc_id = str(path.resolve())
    chunks = services.store.get_chunks([doc_id])
    assert len(chunks) == 4 and all(c.doc_chunks == 4 for c in chunks)
    services.store.delete_chunks([chunks[0].chunk_id])  # as if a write had stopped halfway
    assert services.store.document_index()[doc_id]["fingerprint"] == ""

    report = services.ingestor.run([path])
    assert report.documents_updated == 1
    assert sorted(c.chunk_id for c in services.store.get_chunks([doc_id])) == sorted(c.chunk_id for c in chunks)
    assert services.ingestor.run([path]).documents_skipped == 1


@pytest.mark.parametrize("lookup_by_id_max", [0, 200])
def test_plan_by_id_lookup_and_by_full_listing_agree(services, tmp_path: Path, monkeypatch, lookup_by_id_max) -> None:
    monkeypatch.setattr(ingest_module, "LOOKUP_BY_ID_MAX", lookup_by_id_max)
    corpus = write_corpus(tmp_path / "corpus.jsonl", TINY_CORPUS)
    other = write_corpus(tmp_path / "other.jsonl", [{"_id": "other", "title": "Other", "text": "Unrelated."}])
    services.ingestor.run([corpus, other])
    write_corpus(corpus, [dict(TINY_CORPUS[0], text="Changed.")] + TINY_CORPUS[1:])
    report = services.ingestor.run([corpus])
    assert (report.documents_updated, report.documents_skipped, report.documents_added) == (1, 5, 0)
    assert set(services.store.document_index()) == {d["_id"] for d in TINY_CORPUS} | {"other"}
    assert set(services.store.document_index(["vpn", "missing"])) == {"vpn"}


def _chunk(doc_id: str, title: str, text: str) -> Chunk:
    return Chunk(chunk_id=f"{doc_id}-0", doc_id=doc_id, text=text, title=title, source=f"{doc_id}.md", section="", position=0)


def test_chunk_vectors_blend_the_title_vector(embedder) -> None:
    """Each stored vector is the normalised sum of the chunk text's and its title's vectors."""
    chunk = _chunk("vpn", "How do I reset my VPN token?", "Open the self-service portal and choose Tokens, then Reset.")
    [plain] = ingest_module.embed_chunks(embedder, [chunk], 0.0)
    [blended] = ingest_module.embed_chunks(embedder, [chunk], 1.0, {})
    text_vector, title_vector = embedder.encode([ingest_module.embedding_text(chunk), chunk.title])
    expected = text_vector + title_vector
    assert np.allclose(plain, text_vector, atol=1e-5)
    assert np.allclose(blended, expected / np.linalg.norm(expected), atol=1e-5)
    assert abs(float(np.linalg.norm(blended)) - 1.0) < 1e-5
    # the title's question now matches its chunk better than the chunk text alone did
    question = embedder.encode_one("I need to reset my VPN token")
    assert float(blended @ question) > float(plain @ question)


def test_untitled_chunks_and_the_title_cache(embedder) -> None:
    calls: list[list[str]] = []

    class Counting:
        def encode(self, texts):
            calls.append(list(texts))
            return embedder.encode(texts)

    untitled = _chunk("a", "", "Expenses are reimbursed monthly.")
    titled = [_chunk("b", "Holidays", "Ask your manager."), _chunk("c", "Holidays", "Public holidays follow the office.")]
    cache: dict[str, np.ndarray] = {}
    vectors = ingest_module.embed_chunks(Counting(), [untitled, *titled], 1.0, cache)
    assert np.allclose(vectors[0], embedder.encode([ingest_module.embedding_text(untitled)])[0], atol=1e-5)
    texts = [ingest_module.embedding_text(c) for c in (untitled, *titled)]
    assert calls == [texts + ["Holidays"]]  # one call; one title vector for both chunks, none for the untitled
    assert np.allclose(cache["Holidays"], embedder.encode(["Holidays"])[0], atol=1e-5)
    ingest_module.embed_chunks(Counting(), titled, 1.0, cache)
    assert calls[-1] == [ingest_module.embedding_text(c) for c in titled]  # the cached title is reused


def test_changing_the_title_weight_re_embeds_on_the_next_ingest(home, embedder, tiny_corpus: Path, monkeypatch) -> None:
    from bot.services import Services
    from bot.settings import load_settings

    first = Services(load_settings())
    first.ingestor.run([tiny_corpus])
    assert first.ingestor.run([tiny_corpus]).documents_updated == 0
    monkeypatch.setenv("ASKLOOP_TITLE_WEIGHT", "0")
    second = Services(load_settings())
    report = second.ingestor.run([tiny_corpus])
    assert report.documents_updated == len(TINY_CORPUS) and report.documents_skipped == 0
    [match] = second.store.query(embedder.encode_one(TINY_CORPUS[0]["title"]), 1)
    text_only = embedder.encode([ingest_module.embedding_text(match.chunk)])[0]
    assert abs(match.similarity - float(text_only @ embedder.encode_one(TINY_CORPUS[0]["title"]))) < 1e-3


def test_markdown_chunked_in_the_previous_format_is_re_embedded_once(services, tmp_path: Path) -> None:
    """Chunks that keep tables and code whole, and a head that names the title once, change the
    vectors of Markdown documents: a store written before re-embeds those (and only those) on
    the next ingest, by their fingerprint."""
    from dataclasses import replace

    from retrieval.chunking import Chunker, chunk_id
    from retrieval.loaders import load_file

    guide = tmp_path / "guide.md"
    guide.write_text("# Guide\n\n## Leave\n\nAsk your manager.\n\n## Travel\n\nBook economy.\n", encoding="utf-8")
    corpus = write_corpus(tmp_path / "corpus.jsonl", TINY_CORPUS)
    services.ingestor.run([corpus])
    [document] = load_file(guide.resolve()).documents
    previous = []
    for chunk in Chunker().split(document):
        fingerprint = chunk.fingerprint.rsplit(":md", 1)[0]  # as the previous release wrote it
        previous.append(replace(chunk, fingerprint=fingerprint, chunk_id=chunk_id(chunk.doc_id, chunk.position, fingerprint)))
    assert all(c.fingerprint != n.fingerprint for c, n in zip(previous, Chunker().split(document)))
    services.store.upsert(previous, ingest_module.embed_chunks(services.embedder, previous, 1.0))

    report = services.ingestor.run([guide, corpus])
    assert (report.documents_updated, report.documents_skipped) == (1, len(TINY_CORPUS))
    assert {c.chunk_id for c in services.store.get_chunks([document.doc_id])}.isdisjoint(c.chunk_id for c in previous)
    again = services.ingestor.run([guide, corpus])
    assert (again.documents_updated, again.documents_skipped) == (0, len(TINY_CORPUS) + 1)


@pytest.mark.slow
def test_replicas_on_a_chroma_server_switch_documents_whole(chroma_server, embedder) -> None:
    """Two clients of a `chroma run` server, as two bot replicas: neither sees a staged chunk,
    both see the new version from the moment it is committed, and a deletion hides a document
    before its chunks go."""
    from retrieval.store import ChunkStore, open_client
    from retrieval.types import SourceDocument

    name = f"commits-{os.getpid()}"
    writer = ChunkStore(open_client(Path("unused"), chroma_server.url), name)
    replica = ChunkStore(open_client(Path("unused"), chroma_server.url), name)
    chunker = Chunker(120, 20)
    old = chunker.split(SourceDocument("vpn", "VPN", "vpn.md", "Install WireGuard first. " * 8, fingerprint="v1"))
    writer.upsert(old, ingest_module.embed_chunks(embedder, old, 1.0), staged=True)
    assert replica.get_chunks(["vpn"]) == []
    writer.commit({"vpn": old[0].fingerprint})
    assert len(replica.get_chunks(["vpn"])) == len(old)

    new = chunker.split(SourceDocument("vpn", "VPN", "vpn.md", "Tunnelblick replaced WireGuard. " * 8, fingerprint="v2"))
    writer.upsert(new[:2], ingest_module.embed_chunks(embedder, new[:2], 1.0), staged=True)
    question = embedder.encode_one("Tunnelblick replaced WireGuard")
    assert {m.chunk.fingerprint for m in replica.query(question, 20)} == {old[0].fingerprint}
    writer.upsert(new[2:], ingest_module.embed_chunks(embedder, new[2:], 1.0), staged=True)
    writer.commit({"vpn": new[0].fingerprint})
    assert {m.chunk.fingerprint for m in replica.query(question, 20)} == {new[0].fingerprint}
    assert replica.document_index()["vpn"]["fingerprint"] == new[0].fingerprint

    writer.commit({"vpn": ""})  # what delete_documents does first
    assert replica.get_chunks(["vpn"]) == [] and replica.query(question, 20) == []
    writer.delete_documents(["vpn"])
    assert writer.count() == 0 and replica.committed() == {}


def test_a_nul_stored_before_ingest_cleaned_text_never_leaves_retrieval(services, tiny_corpus: Path) -> None:
    dirty = Chunk("old", "old", "Holidays\x00 are requested\x1b[0m in the portal.", "Holi\x00days", "/kb/old\x00.md")
    services.store.upsert([dirty], np.asarray([services.embedder.encode_one("Holidays are requested in the portal.")]))
    [hit] = services.knowledge_base.search("How are holidays requested?", k=1).hits
    assert (hit.passage, hit.title, hit.source) == ("Holidays are requested[0m in the portal.", "Holidays", "/kb/old.md")
