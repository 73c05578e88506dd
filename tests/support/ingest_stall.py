"""`askloop ingest` twice in one process, the second run stopped for good mid-write: what a
kill -9 test needs, without any hook in the product.

    python -m tests.support.ingest_stall MARKER STALL_AFTER FIRST SECOND

ingests FIRST with the real command; then ingests SECOND with chunks embedded three at a time,
and once STALL_AFTER chunk batches are stored, writes MARKER (the ids stored so far) and waits
to be killed (for at most two minutes, so a forgotten process ends by itself).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    marker, stall_after, first, second = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    from bot.cli import main as askloop

    sys.argv = ["askloop", "ingest", first]
    try:
        askloop()
    except SystemExit as exc:
        if exc.code:
            raise

    import retrieval.ingest as ingest
    from retrieval.store import ChunkStore

    ingest.ENCODE_BATCH = 3
    real_upsert = ChunkStore.upsert
    stored: list[str] = []

    def upsert(self: ChunkStore, chunks, embeddings, staged: bool = False) -> None:  # type: ignore[no-untyped-def]
        real_upsert(self, chunks, embeddings, staged=staged)
        stored.extend(c.chunk_id for c in chunks)
        if len(stored) >= 3 * stall_after:
            marker.write_text(json.dumps(stored), encoding="utf-8")
            time.sleep(120)

    ChunkStore.upsert = upsert  # type: ignore[method-assign]
    sys.argv = ["askloop", "ingest", second]
    askloop()


if __name__ == "__main__":
    main()
