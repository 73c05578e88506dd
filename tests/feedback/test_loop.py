"""The loop's answer use case: every answer is recorded, retrieval reads the active tuning version."""

from __future__ import annotations

import sys
import types

import pytest

from retrieval.tuning import NoTuning

MOD = "mod"


class ReversedTuning(NoTuning):
    """A visible tuning for the test: ranks documents in reverse order of score."""

    def rerank(self, query, hits):
        return sorted(hits, key=lambda h: h.score)


@pytest.fixture()
def learned(monkeypatch):
    """A stand-in `retrieval.tuning_payload` whose tunings say which payload built them."""
    calls: list[tuple[dict, int | None]] = []
    module = types.ModuleType("retrieval.tuning_payload")

    def tuning_from_payload(payload, version, embedder=None):
        calls.append((payload, version))
        return ReversedTuning(version) if payload.get("reverse") else NoTuning(version)

    module.tuning_from_payload = tuning_from_payload
    monkeypatch.setitem(sys.modules, "retrieval.tuning_payload", module)
    return calls


def apply(loop, payload):
    p = loop.store.proposals.create(summary="t", diff={}, payload=payload, created_by="learner")
    loop.store.proposals.record_evaluation(p.id, {}, True)
    return loop.decide(p.ref, MOD, True).version.number


def make(tiny_services, ttl: float):
    """The loop of a replica over the same data (a Services of its own)."""
    from bot.services import Services

    settings = tiny_services.settings.model_copy(update={"moderators": [MOD], "tuning_cache_seconds": ttl})
    return Services(settings).loop


def test_every_answer_is_recorded_with_what_was_shown(tiny_services):
    answered = tiny_services.loop.answer("how do I connect to the VPN?", k=3, asker="U1", origin="slack", channel="C1",
                                         thread_ts="1.0")
    answer = answered.answer
    record = tiny_services.loop.get_answer(answered.answer_id)
    assert (record.asker, record.origin, record.channel, record.thread_ts) == ("U1", "slack", "C1", "1.0")
    assert [s.doc_id for s in record.shown] == [h.doc_id for h in answer.hits]
    assert record.shown[0].score == pytest.approx(answer.hits[0].score)
    assert record.answer_text == answer.text and record.abstained == answer.abstained
    assert record.tuning_version is None


def test_active_version_changes_retrieval_and_is_recorded(tiny_services, learned):
    loop = make(tiny_services, ttl=0)

    def ask():  # type: ignore[no-untyped-def]
        return loop.answer("how do I connect to the VPN?", k=3, asker="U1", origin="cli")

    plain = ask().answer
    version = apply(loop, {"reverse": True})
    tuned = ask()
    assert learned[-1] == ({"reverse": True}, version)
    assert tuned.answer.tuning_version == version
    assert loop.get_answer(tuned.answer_id).tuning_version == version
    assert tuned.answer.hits[0].doc_id != plain.hits[0].doc_id  # the tuning really applied
    loop.rollback(0, MOD)
    back = ask().answer
    assert back.tuning_version is None and back.hits[0].doc_id == plain.hits[0].doc_id


def test_active_version_is_cached_for_a_short_time(tiny_services, learned):
    loop = make(tiny_services, ttl=3600)
    other = make(tiny_services, ttl=0)  # another replica, on the same database
    first = apply(other, {"n": 1})
    assert loop.live.current().version == first
    second = apply(other, {"n": 2})
    assert loop.live.current().version == first  # within the cache time
    assert other.live.current().version == second
    loop.live.forget()  # the cache time has passed
    assert loop.live.current().version == second
    decoded = len(learned)
    other.live.current(), other.live.current()  # re-read each time (ttl 0) but not re-decoded
    assert len(learned) == decoded


def test_without_the_learning_engine_the_base_index_is_served(tiny_services, monkeypatch):
    monkeypatch.setitem(sys.modules, "retrieval.tuning_payload", None)  # import fails
    loop = make(tiny_services, ttl=0)
    apply(loop, {"n": 1})
    tuning = loop.live.current()
    assert isinstance(tuning, NoTuning) and tuning.version is None


def test_a_version_that_cannot_be_decoded_falls_back_to_the_base_index(tiny_services, monkeypatch):
    module = types.ModuleType("retrieval.tuning_payload")

    def broken(payload, version, embedder=None):
        raise ValueError("unknown tuning kind")

    module.tuning_from_payload = broken
    monkeypatch.setitem(sys.modules, "retrieval.tuning_payload", module)
    loop = make(tiny_services, ttl=0)
    apply(loop, {"kind": "from-the-future"})
    answer = loop.answer("how do I connect to the VPN?", k=3, asker="U1", origin="cli").answer
    assert answer.tuning_version is None and answer.hits


class ShiftedQuery(NoTuning):
    """A tuning whose query transform (as a learned adapter does) changes the vector searched with."""

    def search_query(self, question, query):
        shifted = query + 0.5
        return shifted / (shifted @ shifted) ** 0.5


class CountingEmbedder:
    """The real embedder, counting the texts learning asks it to embed."""

    def __init__(self, inner, model_id=None):
        self.inner, self.dimension, self.encoded = inner, inner.dimension, []
        self.model_id = model_id or inner.model_id

    def encode(self, texts, batch_size=None):
        self.encoded.extend(texts)
        return self.inner.encode(texts)


def test_answers_keep_the_raw_question_vector_and_learning_does_not_embed_it_again(tiny_services, embedder, monkeypatch):
    import numpy as np

    from feedback.learning import LearningEngine

    question = "how do I connect to the VPN?"
    tiny_services.settings.answer_threshold = -1.0  # the shifted search must not abstain
    loop = tiny_services.loop
    monkeypatch.setattr(loop.live, "current", ShiftedQuery)
    answered = loop.answer(question, k=3, asker="U1", origin="slack")
    store = loop.store
    loop.vote(answered.answer_id, "U2", 1)
    [vote] = store.training.feedback().votes
    raw = embedder.encode_one(question)
    assert vote.vector_model == embedder.model_id
    np.testing.assert_allclose(vote.question_vector, raw, atol=1e-3)  # raw: not the shifted query
    assert not np.allclose(vote.question_vector, ShiftedQuery().search_query(question, raw), atol=1e-2)

    counting = CountingEmbedder(embedder)
    learned = LearningEngine(counting).build(store.training.feedback())
    assert counting.encoded == [] and learned.payload["memories"]["texts"] == [question]
    other_model = CountingEmbedder(embedder, model_id="another-model@384")
    LearningEngine(other_model).build(store.training.feedback())
    assert other_model.encoded == [question]


def test_documents_ingested_after_a_version_was_learned_count_in_its_title_rule(tiny_services, embedder, tmp_path, monkeypatch):
    """A version's title snapshot is taken when it is learned; the bot compares questions with the
    titles the knowledge base has now. Before the dog policy was written, moderators sent "Can I
    bring my dog to work?" and two like it to the holidays page; once the policy is ingested, a
    question its title describes better than those remembered questions goes to the policy."""
    import json

    from bot.services import Services
    from retrieval.tuning_payload import tuning_from_payload

    services = Services(tiny_services.settings.model_copy(
        update={"moderators": [MOD], "tuning_cache_seconds": 0, "tune_query_encoder": False}))
    services.knowledge_base.lexical.refresh_seconds = 0.0
    loop = services.loop
    store = loop.store
    taught = {"Can I bring my dog to work?": "holidays", "Can I take my dog to work?": "holidays",
              "Are pets allowed at work?": "holidays", "How do I get onto the VPN from home?": "vpn",
              "Who holds the pager this week?": "oncall", "Where do my taxi receipts go?": "expenses"}
    for number, (question, doc) in enumerate(taught.items()):
        user, answer_id = f"U{number}", loop.answer(question, k=3, asker=f"U{number}", origin="cli").answer_id
        loop.vote(answer_id, user, -1)
        loop.decide(loop.suggest_correction(answer_id, user, source=doc).ref, MOD, True)
    outcome = loop.learn(MOD)
    learned = outcome.learned
    version = loop.decide(outcome.proposal.ref, MOD, True, override=True).version.number

    question = "Is my dog allowed in the office?"
    vector = embedder.encode_one(question)
    snapshot = tuning_from_payload(learned.payload, version)
    assert snapshot.adjustments(vector).get("holidays", 0) > 0  # nothing in the snapshot stops it
    assert loop.answer(question, k=3, asker="U9", origin="cli", record=False).answer.hits[0].doc_id == "holidays"

    policy = tmp_path / "policy" / "corpus.jsonl"
    policy.parent.mkdir()
    policy.write_text(json.dumps({"_id": "dogs", "title": "Bringing your dog to the office",
                                  "text": "Dogs are welcome on Fridays if the whole team agrees. Keep them out of the kitchen."}) + "\n")
    services.ingestor.run([policy])
    services.knowledge_base.document_titles()  # notices the new generation and rebuilds the index
    services.knowledge_base.lexical.wait(30)

    # With the version's own titles, three corrections still outweigh the new entry's own match.
    kb = services.knowledge_base
    monkeypatch.setattr(kb, "document_titles", lambda: None)  # as if only the snapshot were known
    assert kb.search(question, 3, snapshot).hits[0].doc_id == "holidays"
    monkeypatch.undo()
    live = kb.with_current_titles(loop.live.current())  # what every search does with the version
    assert live.version == version and live is kb.with_current_titles(loop.live.current())  # embedded once
    assert "dogs" in live.title_docs and "dogs" not in snapshot.title_docs
    assert "holidays" not in live.adjustments(vector)
    assert loop.answer(question, k=3, asker="U9", origin="cli", record=False).answer.hits[0].doc_id == "dogs"
    # The feedback still counts where no title describes a question better than it does.
    near = embedder.encode_one("Can I bring my dog to work with me?")
    assert live.adjustments(near).get("holidays", 0) > 0
    # The gate replays a proposal as the bot would serve it: with the titles of today.
    from feedback.gate import evaluate_payload

    loop.add_golden(question, ["dogs"], MOD)
    golden = evaluate_payload(store, services.knowledge_base, learned.payload).evaluation["golden"]
    assert golden["before"]["hit@1"] == golden["after"]["hit@1"] == 1.0


class Recorder:
    """A LoopEvents that keeps what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def answered(self, origin, abstained):  # type: ignore[no-untyped-def]
        self.calls.append(("answered", origin, abstained))

    def retrieved(self, seconds, failed):  # type: ignore[no-untyped-def]
        self.calls.append(("retrieved", failed))

    def voted(self, kind, counted, source):  # type: ignore[no-untyped-def]
        self.calls.append(("voted", kind, counted, source))

    def corrected(self, source):  # type: ignore[no-untyped-def]
        self.calls.append(("corrected", source))


def test_the_loop_reports_what_it_committed_and_only_that(tiny_services):
    from bot.services import Services
    from feedback.errors import UnknownAnswer
    from retrieval.search import QuestionError

    recorder = Recorder()
    loop = Services(tiny_services.settings, events=recorder).loop
    answered = loop.answer("how do I connect to the VPN?", asker="U1", origin="slack")
    loop.vote(answered.answer_id, "U2", 1, source="slack_reaction")
    loop.vote(answered.answer_id, "U2", 1, source="slack_reaction", delivery="Ev1")
    loop.vote(answered.answer_id, "U2", 1, source="slack_reaction", delivery="Ev1")  # a retry: not counted
    loop.withdraw_vote(answered.answer_id, "U2", source="cli")
    loop.withdraw_vote(answered.answer_id, "U2", source="cli")  # nothing to withdraw: not counted
    loop.suggest_correction(answered.answer_id, "U3", text="Use WireGuard.", origin="shell")
    with pytest.raises(QuestionError):
        loop.answer("   ", asker="U1", origin="slack")  # the asker's problem, not a retrieval failure
    with pytest.raises(UnknownAnswer):
        loop.vote(999999, "U2", 1)
    assert recorder.calls == [
        ("retrieved", False), ("answered", "slack", False),
        ("voted", "up", True, "slack_reaction"), ("voted", "up", True, "slack_reaction"),
        ("voted", "removed", None, "cli"), ("corrected", "shell"),
    ]


def test_a_vector_store_that_cannot_be_reached_is_a_retrieval_failure(home, embedder, monkeypatch):
    from bot.services import Services
    from bot.settings import load_settings
    from retrieval.store import StoreUnavailable
    from tests.support.chroma_server import free_port

    monkeypatch.setenv("ASKLOOP_CHROMA_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    recorder = Recorder()
    loop = Services(load_settings(), events=recorder).loop
    with pytest.raises(StoreUnavailable):
        loop.answer("vpn?", asker="U1", origin="test")
    assert recorder.calls == [("retrieved", True)]
