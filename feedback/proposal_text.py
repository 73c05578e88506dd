"""What a proposal says to the moderator: the structured diff and the one-screen summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from feedback.memories import LearningParams, Memory, Passage
from retrieval.learned import PASSAGE_PREFIX


def describe(
    memories: Iterable[Memory],
    passages: list[Passage],
    skipped: dict[str, int],
    params: LearningParams,
    query_note: str,
) -> dict[str, Any]:
    """Per document: net weight, votes up/down, corrections, and the questions behind them."""
    per_doc: dict[str, dict[str, Any]] = {}
    users: set[str] = set()
    total = 0
    for memory in memories:
        total += 1
        users.add(memory.user)
        entry = per_doc.setdefault(
            memory.doc_id,
            {"doc_id": memory.doc_id, "net": 0.0, "up": 0, "down": 0, "corrections": [], "questions": [], "refs": []},
        )
        entry["net"] += memory.weight
        if memory.origin == "correction":
            entry["corrections"].append(memory.ref)
        elif memory.weight > 0:
            entry["up"] += 1
        else:
            entry["down"] += 1
        if memory.question not in entry["questions"] and len(entry["questions"]) < 3:
            entry["questions"].append(memory.question)
        if len(entry["refs"]) < 8:
            entry["refs"].append(memory.ref)
    documents = sorted(per_doc.values(), key=lambda e: -abs(e["net"]))
    for entry in documents:
        entry["net"] = round(entry["net"], 3)
    return {
        "strategy": "askloop",
        "memories": total,
        "users": len(users),
        "documents": documents,
        "passages": [
            {"doc_id": p.doc_id, "correction": f"c{p.correction_id}", "question": p.question, "text": p.text[:200]}
            for p in passages
        ],
        "skipped": skipped,
        "query_tuning": query_note,
        "params": params.as_dict(),
    }


def render_summary(diff: dict[str, Any], max_lines: int = 12) -> str:
    """One screen: what would change, why, and the thresholds in force."""
    documents = diff["documents"]
    raised = [d for d in documents if d["net"] > 0 and not d["doc_id"].startswith(PASSAGE_PREFIX)]
    lowered = [d for d in documents if d["net"] < 0]
    memory = diff["params"]["memory"]
    lines = [
        f"{diff['memories']} piece(s) of validated feedback from {diff['users']} user(s): "
        f"{len(raised)} document(s) raised, {len(lowered)} lowered, {len(diff['passages'])} corrected "
        f"text(s) added — each only for questions similar to the ones asked (similarity ≥ "
        f"{memory['tau']:.2f} for corrections, {memory['tau_vote']:.2f} for 👍, {memory['tau_negative']:.2f} "
        f"for 👎; at most ±{memory['cap']:.1f}σ per document; an approved correction is served first "
        f"for a near-repeat of its question, similarity ≥ {memory.get('pin_similarity', 0.9):.2f}).",
    ]
    shown = 0
    # Documents with approved corrections first: they are what moderators changed, and they also
    # pin and augment; then by the size of the change.
    for entry in sorted(documents, key=lambda e: (not e["corrections"], -abs(e["net"]))):
        if shown >= max_lines:
            lines.append(f"… and {len(documents) - shown} more document(s) (see the diff).")
            break
        why = []
        if entry["up"]:
            why.append(f"{entry['up']}👍")
        if entry["down"]:
            why.append(f"{entry['down']}👎")
        if entry["corrections"]:
            why.append("corrections " + ", ".join(entry["corrections"][:3]))
        direction = "↑" if entry["net"] > 0 else "↓"
        question = entry["questions"][0] if entry["questions"] else ""
        lines.append(
            f"{direction} {entry['doc_id']} ({entry['net']:+.1f}; {'; '.join(why)}) for questions like “{question[:70]}”"
        )
        shown += 1
    for passage in diff["passages"][:3]:
        if passage["doc_id"].startswith(PASSAGE_PREFIX):
            lines.append(f"+ passage from {passage['correction']} for “{passage['question'][:70]}”")
        else:
            lines.append(f"+ text from {passage['correction']} shown with {passage['doc_id']} "
                         f"for questions like “{passage['question'][:70]}”")
    if diff["skipped"]:
        lines.append("not used: " + "; ".join(f"{n} {why}" for why, n in diff["skipped"].items()))
    lines.append(diff["query_tuning"])
    if diff.get("calibration"):
        lines.append(diff["calibration"]["note"])
    return "\n".join(lines)
