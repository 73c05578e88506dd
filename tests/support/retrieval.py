"""Helpers for the knowledge-base tests: real files of every supported kind, written on the spot."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def write_pdf(path: Path, pages: Iterable[list[str]], title: str | None = None) -> Path:
    """A minimal but valid PDF (one Helvetica text line per entry) that pypdf can read back.

    Written by hand, with a correct cross-reference table, so the test depends on no PDF writer.
    """
    pages = [list(lines) for lines in pages]
    objects: list[bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objects)

    catalog = add("")  # filled in below, once the page tree's number is known
    font = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    page_ids = []
    tree_id = len(objects) + 1 + 2 * len(pages)
    for lines in pages:
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                f"<< /Type /Page /Parent {tree_id} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
            )
        )
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    assert add(f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>") == tree_id
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {tree_id} 0 R >>".encode("latin-1")
    info = add(f"<< /Title ({title}) >>") if title else None

    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = f"<< /Size {len(objects) + 1} /Root {catalog} 0 R"
    trailer += f" /Info {info} 0 R >>" if info else " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode("latin-1")
    path.write_bytes(bytes(out))
    return path


def write_corpus(path: Path, records: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop_leaked_log_handlers() -> None:
    """Remove root log handlers an earlier in-process `askloop serve/worker` run left behind.

    Those handlers hold the stderr of the CliRunner run that installed them; once it is closed,
    every log line prints a "Logging error" traceback into whatever stderr is current.
    """
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_askloop", False):
            root.removeHandler(handler)
