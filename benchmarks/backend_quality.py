"""Do the embedding backends retrieve alike? Vector agreement and retrieval metrics per backend.

For each data set (BEIR layout) and each backend, the corpus is ingested through the real pipeline
into a fresh store, and the judged questions are searched through the real search path, by
vectors alone (the "baseline dense" figure: no keyword scores, no feedback) and hybrid (the
default keyword weight). Printed per backend: nDCG@10 and hit@1 on the test questions and on
every judged question (test + feedback), their difference from torch, and how closely the
backend's vectors agree with torch's (cosine, per chunk and per question). One more row searches
the torch-built store with int8 questions: what a bot answers with between switching the backend
and re-ingesting (askloop then warns, see retrieval/reembed.py).

    .venv/bin/python benchmarks/backend_quality.py [--sets PATH ...] [--backends torch onnx-fp32 onnx-int8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.settings import Settings, default_model_cache  # noqa: E402
from feedback.datasets import load_dataset  # noqa: E402
from feedback.metrics import mean_metrics, per_query  # noqa: E402
from retrieval.chunking import Chunker  # noqa: E402
from retrieval.embeddings import Embedder, shared_embedder  # noqa: E402
from retrieval.ingest import Ingestor  # noqa: E402
from retrieval.search import KnowledgeBase  # noqa: E402
from retrieval.store import ChunkStore, open_client  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOLERANCE = 0.005  # largest allowed difference from torch in nDCG@10 and hit@1 (baseline dense)


def chunk_vectors(store: ChunkStore) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for page in store.pages(["embeddings"], "reading vectors"):
        out.update(zip(page["ids"], np.asarray(page["embeddings"], dtype=np.float32)))
    return out


def rankings(kb: KnowledgeBase, ids: list[str], texts: list[str], vectors: np.ndarray) -> dict[str, list[str]]:
    results = kb.search_many(texts, 10, None, vectors)
    return {q: [h.doc_id for h in r.hits] for q, r in zip(ids, results)}


def measure(kb: KnowledgeBase, qrels: dict, ids: list[str], texts: list[str], vectors: np.ndarray) -> dict[str, float]:
    return mean_metrics(per_query({q: qrels[q] for q in ids}, rankings(kb, ids, texts, vectors)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, nargs="+", default=[DATA / "covid-qa", DATA / "stackfaq"])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx-fp32", "onnx-int8"])
    args = parser.parse_args()
    backends = ["torch"] + [b for b in args.backends if b != "torch"]  # torch is the reference
    defaults = Settings.model_fields
    chunker = Chunker(defaults["chunk_size"].default, defaults["chunk_overlap"].default, defaults["title_weight"].default)
    hybrid_weight = defaults["lexical_weight"].default
    embedders: dict[str, Embedder] = {b: shared_embedder(None, b, default_model_cache()) for b in backends}
    failed = False
    for data in args.sets:
        if not data.is_dir():
            print(f"{data}: not found, skipped")
            continue
        ds = load_dataset(data)
        test_ids = list(ds.test)
        all_ids = list(dict.fromkeys(test_ids + list(ds.feedback_order)))
        texts = {q: ds.queries[q] for q in all_ids}
        qrels = {**ds.feedback, **ds.test}
        print(f"\n== {ds.name}: {len(test_ids)} test questions, {len(all_ids)} judged in all")
        reference: dict[str, object] = {}
        with tempfile.TemporaryDirectory(prefix="askloop-quality-") as tmp:
            stores: dict[str, ChunkStore] = {}
            for backend in backends:
                embedder = embedders[backend]
                store = ChunkStore(open_client(Path(tmp) / backend, None), "quality")
                started = time.perf_counter()
                Ingestor(store, embedder, chunker).run([ds.corpus])
                ingest_s = time.perf_counter() - started
                stores[backend] = store
                question_vectors = embedder.encode([texts[q] for q in all_ids])
                chunks = chunk_vectors(store)
                agreement = ""
                if backend == "torch":
                    reference = {"questions": question_vectors, "chunks": chunks}
                else:
                    ref_chunks = reference["chunks"]
                    assert isinstance(ref_chunks, dict)
                    c = np.array([float(chunks[i] @ ref_chunks[i]) for i in chunks])
                    q = np.sum(question_vectors * reference["questions"], axis=1)  # type: ignore[operator]
                    agreement = (f"; cosine to torch: chunks min {c.min():.4f} mean {c.mean():.4f}, "
                                 f"questions min {q.min():.4f} mean {q.mean():.4f}")
                print(f"{backend}: {len(chunks)} chunks ingested in {ingest_s:.1f} s{agreement}")
                by_id = dict(zip(all_ids, question_vectors))
                rows = []
                for label, weight in (("dense", 0.0), ("hybrid", hybrid_weight)):
                    kb = KnowledgeBase(store, embedder, lexical_weight=weight)
                    for split, ids in (("test", test_ids), ("all", all_ids)):
                        metrics = measure(kb, qrels, ids, [texts[q] for q in ids], np.stack([by_id[q] for q in ids]))
                        key = f"{label}/{split}"
                        if backend == "torch":
                            reference[key] = metrics
                        base = reference[key]
                        assert isinstance(base, dict)
                        d_ndcg, d_hit = metrics["ndcg@10"] - base["ndcg@10"], metrics["hit@1"] - base["hit@1"]
                        rows.append(f"  {key:<12} nDCG@10 {metrics['ndcg@10']:.4f} ({d_ndcg:+.4f})  "
                                    f"hit@1 {metrics['hit@1']:.4f} ({d_hit:+.4f})")
                        if label == "dense" and backend != "torch" and max(abs(d_ndcg), abs(d_hit)) > TOLERANCE:
                            failed = True
                            rows[-1] += f"  <-- beyond {TOLERANCE}"
                print("\n".join(rows))
            if "onnx-int8" in embedders:  # one side int8, the other exact: where does the loss come from?
                for label, chunks_of, questions_of in (("torch chunks, int8 questions", "torch", "onnx-int8"),
                                                       ("int8 chunks, torch questions", "onnx-int8", "torch")):
                    for mode, weight in (("dense", 0.0), ("hybrid", hybrid_weight)):
                        kb = KnowledgeBase(stores[chunks_of], embedders[questions_of], lexical_weight=weight)
                        kb.vectors.check = lambda: None  # type: ignore[method-assign]  # measured on purpose
                        vectors = embedders[questions_of].encode([texts[q] for q in test_ids])
                        metrics = measure(kb, qrels, test_ids, [texts[q] for q in test_ids], vectors)
                        base = reference[f"{mode}/test"]
                        assert isinstance(base, dict)
                        print(f"{label}: {mode}/test nDCG@10 {metrics['ndcg@10']:.4f} "
                              f"({metrics['ndcg@10'] - base['ndcg@10']:+.4f})  hit@1 {metrics['hit@1']:.4f} "
                              f"({metrics['hit@1'] - base['hit@1']:+.4f})")
    print(f"\nbaseline dense metrics of every backend within {TOLERANCE} of torch: {'NO' if failed else 'yes'}")


if __name__ == "__main__":
    main()
