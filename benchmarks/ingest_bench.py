"""Ingest throughput: the whole pipeline against bare `SentenceTransformer.encode`, same chunks.

The pipeline run covers everything `askloop ingest` does — discover and load the files, chunk,
compare with the store, embed, write to an embedded Chroma store — in a fresh data directory.
The bare run encodes exactly the texts the pipeline embedded (chunks, and each document title
once for title blending), with a separately loaded model
and the same batch size, so the ratio is what the rest of the pipeline costs on top of the
model. Rounds alternate (bare then pipeline, pipeline then bare, ...) so background load hits both alike;
each round's ratio is printed, then the median ratio — by wall clock, and by CPU time of this
process (which other programs on a busy machine do not inflate) — with the load average.

    .venv/bin/python benchmarks/ingest_bench.py [--rounds 4] [--corpus PATH ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.chunking import Chunker  # noqa: E402
from retrieval.embeddings import default_model_path, shared_embedder  # noqa: E402
from retrieval.ingest import Ingestor, embedding_text  # noqa: E402
from retrieval.loaders import load_all  # noqa: E402
from retrieval.store import ChunkStore, open_client  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_CORPORA = [DATA / "covid-qa" / "corpus.jsonl"]


class TimedEmbedder:
    """The pipeline's embedder, counting the wall time spent inside the model."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.seconds = 0.0

    def encode(self, texts, batch_size=None):
        start = time.perf_counter()
        try:
            return self._embedder.encode(texts, batch_size)
        finally:
            self.seconds += time.perf_counter() - start


def pipeline_run(paths: list[Path]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, seconds inside the model, chunks written: a full ingest."""
    with tempfile.TemporaryDirectory(prefix="askloop-ibench-") as tmp:
        embedder = TimedEmbedder(shared_embedder(None))
        store = ChunkStore(open_client(Path(tmp) / "chroma", None), "bench")
        ingestor = Ingestor(store, embedder, Chunker())  # type: ignore[arg-type]
        start, cpu = time.perf_counter(), time.process_time()
        report = ingestor.run(paths)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert store.count() == report.chunks_added
        return seconds, cpu, embedder.seconds, report.chunks_added


def bare_run(model, texts: list[str], batch_size: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--corpus", type=Path, nargs="+", default=[p for p in DEFAULT_CORPORA if p.exists()])
    args = parser.parse_args()
    if not args.corpus:
        sys.exit("no corpus: pass --corpus PATH (files or folders askloop can ingest)")

    from sentence_transformers import SentenceTransformer

    embedder = shared_embedder(None)
    chunker = Chunker()
    chunks = [c for r in load_all(args.corpus) for d in r.documents for c in chunker.split(d)]
    texts = [embedding_text(c) for c in chunks]
    titles = list(dict.fromkeys(c.title for c in chunks if c.title.strip())) if chunker.title_weight else []
    texts_and_titles = texts + titles  # the pipeline also embeds each title once (title blending)
    bare_model = SentenceTransformer(default_model_path(), device="cpu")
    bare_run(bare_model, texts[:64], embedder.batch_size)  # warm-up, both models
    embedder.encode(texts[:64])
    print(f"corpus: {', '.join(str(p) for p in args.corpus)}")
    print(f"chunks: {len(chunks)}, mean {sum(map(len, texts)) / len(texts):.0f} characters; "
          f"plus {len(titles)} titles; batch size {embedder.batch_size}; torch threads {__import__('torch').get_num_threads()}")

    wall_ratios, cpu_ratios = [], []
    for round_number in range(1, args.rounds + 1):
        if round_number % 2:  # alternate which goes first, so neither always meets a busier moment
            bare, bare_cpu = bare_run(bare_model, texts_and_titles, embedder.batch_size)
            seconds, cpu, in_model, written = pipeline_run(args.corpus)
        else:
            seconds, cpu, in_model, written = pipeline_run(args.corpus)
            bare, bare_cpu = bare_run(bare_model, texts_and_titles, embedder.batch_size)
        assert written == len(chunks), (written, len(chunks))
        wall_ratios.append(bare / seconds)
        cpu_ratios.append(bare_cpu / cpu)
        print(f"round {round_number}: bare encode {len(texts) / bare:.1f} chunks/s "
              f"({bare:.1f} s, {bare_cpu:.1f} s CPU), pipeline {written / seconds:.1f} chunks/s "
              f"({seconds:.1f} s, {cpu:.1f} s CPU, {seconds - in_model:.2f} s outside the model), "
              f"ratio {wall_ratios[-1]:.2f}, "
              f"load average {os.getloadavg()[0]:.1f}")
    print(f"median pipeline/bare ratio: {statistics.median(wall_ratios):.2f} by wall clock, "
          f"{statistics.median(cpu_ratios):.2f} by CPU time (target ≥ 0.90)")


if __name__ == "__main__":
    main()
