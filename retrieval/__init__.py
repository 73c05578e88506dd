"""The knowledge base: loading, chunking, embedding, the Chroma store, ranking and answer text.

Knows nothing of SQL or Slack; `feedback` and `bot` build on it.
"""

import os

# torch's OpenMP threads busy-wait between operations by default. With other work on the cores (a
# second process, the bot's own threads) they spin against it: training the query encoder took
# 6.3 s a step on a loaded 2-core machine instead of 0.24 s (benchmarks/learning_bench.py). Idle
# threads that sleep cost nothing measurable on a quiet machine. It must be set before torch
# loads its OpenMP runtime, so here, where every askloop process passes first; a value the
# operator set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from retrieval.types import Chunk, Hit, SourceDocument  # noqa: E402

__all__ = ["Chunk", "Hit", "SourceDocument"]
