"""The tuned query encoder: what it learns, how it travels in a payload, and when it is left out."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from feedback.adapter import store_chunk_reads
from feedback.encoder_tuning import EncoderTraining, anchor_pairs, train_query_encoder, training_pairs
from feedback.learning import LearningEngine, LearningParams, Memory
from retrieval.learned import LearnedTuning, MemoryParams, PayloadError
from retrieval.tuning_payload import tuning_from_payload
from retrieval.tuning import NoTuning
from tests.support.learning import TableEncoder, correction, feedback, unit, vote

# Team slang the base model cannot know: each word names one document of the tiny corpus.
TAUGHT = {
    "expenses": ["how do I file a bluebird", "where is the bluebird form", "bluebird approval", "my bluebird was refused"],
    "holidays": ["how many sunflower days do I have", "book a sunflower", "sunflower request", "can I cancel a sunflower"],
    "oncall": ["who has the firefly this week", "firefly schedule", "swap my firefly week", "what does firefly duty mean"],
    "deploy": ["how do I run a granite", "granite on friday", "granite needs approvals", "undo a granite"],
}
UNSEEN = {"when is the bluebird due": "expenses", "sunflower in december": "holidays", "firefly pay": "oncall"}
PLAIN = {"How do I connect to the VPN?": "vpn", "When is my laptop replaced?": "laptop"}
QUICK = EncoderTraining(min_pairs=8, epochs=6)


def _taught_feedback():  # type: ignore[no-untyped-def]
    pairs = [(q, doc) for doc, questions in TAUGHT.items() for q in questions]
    return feedback(corrections=[correction(i, q, f"u{i}", doc) for i, (q, doc) in enumerate(pairs)])


def _top(kb, question: str, tuning) -> str:  # type: ignore[no-untyped-def]
    return kb.search(question, k=3, tuning=tuning).hits[0].doc_id


def _encoder_only(tuning: LearnedTuning) -> LearnedTuning:
    """The same tuned encoder with no memories: what the encoder alone does to a search."""
    return LearnedTuning(version=None, params=MemoryParams(), questions=np.zeros((0, 384)),
                         memory_question=np.zeros(0), memory_doc=[], memory_weight=np.zeros(0),
                         query_encoder=tuning.query_encoder, encoder_blend=tuning.encoder_blend)


@pytest.fixture()
def tuned(tiny_services, embedder):  # type: ignore[no-untyped-def]
    params = LearningParams(encoder=QUICK)
    chunk_vectors, doc_titles = store_chunk_reads(tiny_services.store)
    engine = LearningEngine(embedder, params, chunk_vectors=chunk_vectors, doc_titles=doc_titles)
    proposal = engine.build(_taught_feedback())
    return proposal, tuning_from_payload(json.loads(json.dumps(proposal.payload)), None)


def test_tuned_encoder_carries_team_vocabulary_to_phrasings_nobody_taught(tiny_services, tuned) -> None:
    kb = tiny_services.knowledge_base
    proposal, tuning = tuned
    assert "query encoder tuned on 16 validated pair(s) (and 6 title anchor(s))" in proposal.summary
    encoder_alone = _encoder_only(tuning)
    misses = [q for q, doc in UNSEEN.items() if _top(kb, q, NoTuning()) != doc]
    assert len(misses) >= 2, "the base model already knows the slang: the case proves nothing"
    for question, doc in UNSEEN.items():
        assert _top(kb, question, encoder_alone) == doc, question
    for question, doc in PLAIN.items():  # what nobody gave feedback on still works
        assert _top(kb, question, NoTuning()) == doc
        assert _top(kb, question, encoder_alone) == doc, question


def test_tuned_search_vector_differs_but_the_kept_question_vector_is_the_base_one(tiny_services, tuned, embedder) -> None:
    _, tuning = tuned
    question = "when is the bluebird due"
    base = embedder.encode_one(question)
    searched = tuning.search_query(question, base)
    assert np.linalg.norm(searched) == pytest.approx(1.0, abs=1e-4)
    assert float(searched @ base) < 0.99
    result = tiny_services.knowledge_base.search(question, k=3, tuning=tuning)
    np.testing.assert_allclose(result.vector, base, atol=1e-5)


def test_a_broken_or_foreign_encoder_block_is_refused_when_decoded(tuned) -> None:
    proposal, _ = tuned
    foreign = copy.deepcopy(proposal.payload)
    foreign["id"] = "foreign"
    foreign["query_encoder"]["model"] = "some-other-model@768"
    with pytest.raises(PayloadError, match="made for some-other-model@768"):
        tuning_from_payload(foreign, None)
    broken = copy.deepcopy(proposal.payload)
    broken["id"] = "broken"
    del broken["query_encoder"]["weights"]
    with pytest.raises(PayloadError, match="malformed query encoder"):
        tuning_from_payload(broken, None)


def test_training_pairs_are_distinct_validated_documents_heaviest_first() -> None:
    memories = [
        Memory("q1", "a", 1.0, "vote", "a1", "u1"),
        Memory("q1", "a", 1.0, "vote", "a2", "u2"),  # the same pair again: counted once, weighs 2
        Memory("q2", "b", 3.0, "correction", "c1", "u3"),
        Memory("q3", "c", -1.0, "vote", "a3", "u4"),  # a 👎 says nothing about the right document
        Memory("q4", "correction:7", 3.0, "correction", "c2", "u5"),  # free text: not in the store
    ]
    assert training_pairs(memories, 10) == [("q2", "b"), ("q1", "a")]
    assert training_pairs(memories, 1) == [("q2", "b")]


def test_no_user_and_no_document_dominates_the_training_pairs() -> None:
    one_user = [Memory(f"mallory {i}", f"m{i}", 1.0, "vote", f"a{i}", "mallory") for i in range(20)]
    one_doc = [Memory(f"wiki {i}", "wiki", 1.0, "vote", f"b{i}", f"u{i}") for i in range(20)]
    others = [Memory(f"q{i}", f"d{i}", 1.0, "vote", f"c{i}", f"v{i}") for i in range(4)]
    pairs = training_pairs(one_user + one_doc + others, 100, user_limit=3, doc_limit=2)
    assert sum(q.startswith("mallory") for q, _ in pairs) == 3
    assert sum(d == "wiki" for _, d in pairs) == 2
    assert sum(q.startswith("q") for q, _ in pairs) == 4


def test_anchors_are_titles_of_stored_documents_never_a_taught_question() -> None:
    titles = {"vpn": "Connecting to the VPN", "laptop": "Getting a new laptop", "faq": "how do I file a bluebird"}
    taught = [("how do I file a bluebird", "expenses")]
    anchors = anchor_pairs(titles, taught, 5, seed=0)
    assert sorted(anchors) == [("Connecting to the VPN", "vpn"), ("Getting a new laptop", "laptop")]
    assert anchor_pairs(titles, taught, 1, seed=0) == anchor_pairs(titles, taught, 1, seed=0)  # seeded
    assert len(anchor_pairs(titles, taught, 1, seed=0)) == 1


def test_encoder_is_left_alone_below_its_pair_threshold_or_without_a_model() -> None:
    few = [Memory(f"q{i}", "a", 1.0, "vote", f"a{i}", f"u{i}") for i in range(3)]
    def never() -> None:
        raise AssertionError("the model must not be loaded with too few pairs")

    result = train_query_encoder(few, {}, None, lambda: (["a"], np.eye(1, dtype=np.float32)), EncoderTraining(),
                                 load_base=never)
    assert result.weights is None and "3 validated pair(s), 32 needed" in result.note
    enough = [Memory(f"q{i}", "a", 1.0, "vote", f"a{i}", f"u{i}") for i in range(40)]
    result = train_query_encoder(enough, {}, None, lambda: (["a"], np.eye(1, dtype=np.float32)), EncoderTraining())
    assert result.weights is None and "not available" in result.note
    off = train_query_encoder(enough, {}, None, None, EncoderTraining(enabled=False))
    assert off.weights is None and "turned off (ASKLOOP_TUNE_QUERY_ENCODER)" in off.note
    # An engine whose encoder is not a loadable model proposes no encoder block.
    votes = [vote(i, f"q{i}", f"u{i}", +1, "a") for i in range(40)]
    proposal = LearningEngine(TableEncoder({f"q{i}": unit(1, i / 40) for i in range(40)})).build(feedback(votes))
    assert "query_encoder" not in proposal.payload and "query encoder unchanged" in proposal.summary


def test_an_applied_encoder_answers_through_the_bot_and_rolls_back(tiny_services, tuned) -> None:
    """Through the store: proposal → evaluation → approval → live version, then rollback to base."""
    from bot.services import Services

    loop = Services(tiny_services.settings.model_copy(update={"moderators": ["M1"], "tuning_cache_seconds": 0})).loop
    proposal, _ = tuned
    store = loop.store

    def ask(question: str, record: bool = True):  # type: ignore[no-untyped-def]
        return loop.answer(question, k=3, asker="U1", origin="cli", record=record).answer

    question, doc = next((q, d) for q, d in UNSEEN.items() if ask(q, record=False).hits[0].doc_id != d)
    before = ask(question)
    record = store.proposals.create(summary=proposal.summary, diff=proposal.diff, payload=proposal.payload,
                                    created_by="learner")
    store.proposals.record_evaluation(record.id, {}, True)
    version = loop.decide(record.ref, "M1", True).version.number
    tuned_answer = ask(question)
    assert tuned_answer.tuning_version == version and tuned_answer.hits[0].doc_id == doc
    loop.rollback(0, "M1")
    back = ask(question)
    assert back.tuning_version is None
    assert [h.doc_id for h in back.hits] == [h.doc_id for h in before.hits]


def test_the_setting_turns_encoder_tuning_off_for_the_bot_s_learning(tiny_services) -> None:
    from bot.services import Services

    assert tiny_services.config.learning.encoder.enabled
    off = Services(tiny_services.settings.model_copy(update={"tune_query_encoder": False}))
    assert not off.config.learning.encoder.enabled


def test_questions_far_from_all_feedback_search_with_the_base_vector(tuned, embedder) -> None:
    _, tuning = tuned
    assert tuning.encoder_reach > 0
    far = "Are old laptops wiped before they are returned to IT?"
    near = "when is the bluebird due"
    for question, reached in ((far, False), (near, True)):
        base = embedder.encode_one(question)
        assert (float(tuning.similarities(base).max()) >= tuning.encoder_reach) is reached, question
        searched = tuning.search_query(question, base)
        assert np.array_equal(searched, base) is not reached, question


def test_weights_that_fit_no_layer_are_refused_when_decoded(tuned) -> None:
    proposal, _ = tuned
    odd = copy.deepcopy(proposal.payload)
    odd["id"] = "odd-weights"
    name = sorted(odd["query_encoder"]["weights"])[0]
    odd["query_encoder"]["weights"]["no.such.layer.lora_A.weight"] = odd["query_encoder"]["weights"].pop(name)
    with pytest.raises(PayloadError, match="does not fit"):
        tuning_from_payload(odd, None)


def test_the_payload_carries_the_stored_documents_titles(tiny_services, tuned, embedder) -> None:
    proposal, tuning = tuned
    _, doc_titles = store_chunk_reads(tiny_services.store)
    titles = proposal.payload["titles"]
    assert titles["doc_ids"] == sorted(doc_titles()) == tuning.title_docs and len(titles["doc_ids"]) >= 6
    vpn = titles["doc_ids"].index("vpn")
    np.testing.assert_allclose(tuning.title_vectors[vpn], embedder.encode_one(doc_titles()["vpn"]), atol=2e-3)


def test_the_title_margin_setting_reaches_the_learning_parameters(tiny_services) -> None:
    from bot.services import Services

    assert tiny_services.config.learning.memory.title_margin == 0.0
    looser = Services(tiny_services.settings.model_copy(update={"title_margin": 0.1}))
    assert looser.config.learning.memory.title_margin == 0.1
    assert looser.config.learning.encoder.enabled
