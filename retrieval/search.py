"""Top-k documents for a question: embed, (adapt), search, fold, add keyword scores, (augment), rank."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.lexical import LEXICAL_CANDIDATES, KeywordScores, LexicalIndexCache
from retrieval.query_encoder import batched_queries
from retrieval.ranking import fold_to_documents, merge_hits
from retrieval.reembed import VectorCheck
from retrieval.store import ChunkStore
from retrieval.tuning import NoTuning, Tuning
from retrieval.types import Hit

if TYPE_CHECKING:  # the model is loaded by whoever builds a KnowledgeBase, not by importing this module
    from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)

# Chunks fetched per requested document: documents have several chunks, and reranking needs a
# candidate pool wider than what is finally shown.
CHUNKS_PER_DOC = 8
MIN_CANDIDATE_CHUNKS = 50
MAX_CANDIDATE_CHUNKS = 400
# Chunks read per document that only a tuning or the keywords made a candidate.
MAX_CHUNKS_READ = 16


class QuestionError(ValueError):
    """The question itself is unusable (empty, too long); the message says why."""


class EmptyKnowledgeBase(RuntimeError):
    """Nothing has been ingested yet, so there is nothing to answer from."""

    def __init__(self) -> None:
        super().__init__("the knowledge base is empty: add documents with `askloop ingest PATH`")


# Layout a question may carry (pasted from a document or a terminal): whitespace, kept as such.
_LAYOUT = {"\r\n": "\n", "\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x85": "\n"}
_LAYOUT_PATTERN = re.compile("\r\n|[\r\x0b\x0c\x85]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_question(question: str, max_chars: int) -> str:
    """The question as it is searched and recorded, or `QuestionError` saying what is wrong.

    - Line breaks, tabs, vertical tabs and form feeds are layout: kept as line breaks and tabs.
    - A lone surrogate is what Python makes of bytes that are not UTF-8 (a terminal in another
      encoding): refused, since what the person typed cannot be known.
    - Any other control character (NUL, ESC, DEL, the C1 controls) is refused, not removed: it
      comes from pasted terminal output or a broken script, removing it would record a question
      nobody asked ("[31mHow ..."), and NUL cannot be stored by PostgreSQL at all.
    """
    text = _LAYOUT_PATTERN.sub(lambda m: _LAYOUT[m.group()], question or "").strip()
    if not text:
        raise QuestionError("the question is empty")
    if _SURROGATE.search(text):
        raise QuestionError(
            "the question is not valid text: it has bytes that are not UTF-8 "
            "(is the terminal set to another encoding?)"
        )
    control = _CONTROL.search(text)
    if control:
        raise QuestionError(
            f"the question contains a control character (U+{ord(control.group()):04X}); "
            "remove it and ask again"
        )
    if len(text) > max_chars:
        raise QuestionError(
            f"the question is too long ({len(text):,} characters; the limit is {max_chars:,})"
        )
    return text


@dataclass(frozen=True)
class SearchResult:
    """`vector` is the raw embedder vector of `question`, not the one the tuning searched with
    (a tuned query encoder's or a learned adapter's): what the feedback store keeps, so learning can reuse it, and what a
    later tuning — whatever its adapter — expects as input."""

    question: str
    vector: np.ndarray
    hits: list[Hit]
    tuning_version: int | None


class KnowledgeBase:
    """`lexical_weight` is the keyword bonus of the document that best matches the question's
    words (others get it in proportion to their BM25 score); 0 searches by vectors alone.
    `keyword_cache`: a folder where built keyword indexes are kept for the next process."""

    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        max_question_chars: int = 2000,
        lexical_weight: float = 0.0,
        keyword_cache: Path | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.max_question_chars = max_question_chars
        self.lexical_weight = lexical_weight
        self.lexical = LexicalIndexCache(store, cache_dir=keyword_cache)
        self.vectors = VectorCheck(store, embedder)  # are the chunks embedded as questions are?
        # id(tuning) → (tuning, the titles it was given, the tuning with them): with_current_titles
        self._titled: OrderedDict[int, tuple[Tuning, dict[str, str], Tuning]] = OrderedDict()
        self._titled_lock = threading.Lock()

    def embed_question(self, question: str) -> np.ndarray:
        return self.embedder.encode_one(check_question(question, self.max_question_chars))

    def search(self, question: str, k: int = 5, tuning: Tuning | None = None) -> SearchResult:
        text = check_question(question, self.max_question_chars)
        return self.search_vector(text, self.embedder.encode_one(text), k, tuning)

    def search_many(
        self,
        questions: Sequence[str],
        k: int = 5,
        tuning: Tuning | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """Many questions at once (replays, evaluation): the same results as `search` for each,
        with the base vectors embedded in one batch (unless given) and the tuned query encoder's
        in another, instead of one model call per question."""
        if vectors is None:
            texts = [check_question(q, self.max_question_chars) for q in questions]
            vectors = self.embedder.encode(texts)
        else:  # questions already embedded were checked when they were asked
            texts = list(questions)
        if len(vectors) != len(texts):
            raise ValueError(f"{len(texts)} questions but {len(vectors)} vectors")
        tuning = self.with_current_titles(tuning or NoTuning())
        with batched_queries(tuning, texts, vectors):
            return [self.search_vector(q, v, k, tuning) for q, v in zip(texts, vectors)]

    def prepare_keywords(self) -> None:
        """Build the keyword index now (a server calls this at start, in the background, so the
        first question does not wait for it: about 10 s at 100,000 chunks)."""
        if self.lexical_weight > 0:
            self.lexical.index()

    def document_titles(self) -> dict[str, str] | None:
        """doc id → title as the store has them now, read with the keyword index (so they follow
        ingest as it does; the same object until it is rebuilt); None without keyword scores."""
        return self.lexical.index().titles if self.lexical_weight > 0 else None

    def with_current_titles(self, tuning: Tuning) -> Tuning:
        """`tuning` with the titles this knowledge base has now (`LearnedTuning.with_titles`),
        which every search uses (the bot's, and the gate's replays), so documents ingested since
        a version was learned count in its title rule. Titles the version lacks are embedded once
        per index rebuild, not per question; other tunings, or no keyword index, pass through.
        """
        with_titles = getattr(tuning, "with_titles", None)
        titles = self.document_titles() if with_titles is not None else None
        if with_titles is None or titles is None:
            return tuning
        key = id(tuning)
        with self._titled_lock:
            kept = self._titled.get(key)
            if kept is not None and kept[0] is tuning and kept[1] is titles:
                return kept[2]
        try:
            fresh = with_titles(titles, self.embedder.encode)
        except Exception:  # the model failed on a title: the version's own snapshot still holds
            log.exception("could not embed the knowledge base's new titles; using the version's own")
            return tuning
        with self._titled_lock:
            self._titled[key] = (tuning, titles, fresh)
            while len(self._titled) > 4:  # the live version, and the gate's before and after
                self._titled.popitem(last=False)
        return fresh

    def keyword_scores(self, question: str) -> KeywordScores:
        if self.lexical_weight <= 0:
            return KeywordScores({})
        return self.lexical.index().scores(question)

    def search_vector(
        self, question: str, vector: np.ndarray, k: int = 5, tuning: Tuning | None = None,
        every_candidate: bool = False,
    ) -> SearchResult:
        """Search with a precomputed question vector (batch evaluation embeds all at once).

        `every_candidate`: return every document the search for `k` considered, ranked, not only
        the first `k` (a diagnosis asks whether the right one was among them at all)."""
        self.vectors.check()
        tuning = self.with_current_titles(tuning or NoTuning())
        query = tuning.search_query(question, vector)
        n = min(max(k * CHUNKS_PER_DOC, MIN_CANDIDATE_CHUNKS), MAX_CANDIDATE_CHUNKS)
        matches = self.store.query(query, n)
        if not matches:  # an unfiltered search finds nothing only in an empty store
            raise EmptyKnowledgeBase()
        hits = fold_to_documents(matches)
        keywords = self.keyword_scores(question)
        present = {h.doc_id for h in hits}
        wanted = [d for d in tuning.extra_doc_ids(vector) if d not in present]
        wanted += [d for d in keywords.best(LEXICAL_CANDIDATES) if d not in present and d not in wanted]
        if wanted:
            hits = merge_hits(hits, self._candidates(query, wanted))
        if keywords.by_doc:
            hits = [self._with_keywords(hit, keywords.by_doc.get(hit.doc_id, 0.0)) for hit in hits]
        hits = merge_hits(hits, tuning.extra_hits(vector))
        ranked = tuning.rerank(vector, hits)
        return SearchResult(question, vector, ranked if every_candidate else ranked[:k], tuning.version)

    def _candidates(self, query: np.ndarray, doc_ids: list[str]) -> list[Hit]:
        """Documents the vector search did not return, scored by their best chunk all the same.

        Chunks the keyword index knows are read by id; documents it does not know (ingested
        since it was built, or a tuning's extra documents without the index) take a search
        filtered to them."""
        index = self.lexical.current() if self.lexical_weight > 0 else None
        by_id = [c for d in doc_ids for c in (index.chunk_ids(d)[:MAX_CHUNKS_READ] if index else [])]
        matches = self.store.match_chunks(query, by_id)
        found = {m.chunk.doc_id for m in matches}
        rest = [d for d in doc_ids if d not in found]
        if rest:
            matches += self.store.query(query, len(rest) * 4, rest)
        return fold_to_documents(matches)

    def _with_keywords(self, hit: Hit, keyword_score: float) -> Hit:
        bonus = self.lexical_weight * keyword_score
        if bonus <= 0:
            return hit
        score = hit.score + bonus
        return replace(hit, score=score, base_score=score)
