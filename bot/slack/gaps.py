"""The knowledge-gap section of the App Home: what people asked that the knowledge base could not
answer (`feedback.gaps`), so whoever keeps the documents sees what to write next."""

from __future__ import annotations

from typing import Any

from bot.slack.blocks import Block, context, section, when
from bot.slack.text import escape, plain

SHOWN = 5
HOME_BLOCK_LIMIT = 100  # Slack's limit for a Home tab view


def gap_blocks(report: Any) -> list[Block]:
    """A header and one line per gap (typical question, how often, how many people)."""
    blocks: list[Block] = [{"type": "divider"}, {"type": "header", "text": plain("Knowledge gaps", 150)}]
    if not report.gaps:
        blocks.append(section(f"_Nothing the knowledge base failed to answer in the last {report.days} days._"))
        return blocks
    lines = []
    for gap in report.gaps[:SHOWN]:
        asked = f"{gap.questions}× by {gap.askers} person(s)"
        lines.append(f"• “{escape(gap.question[:150])}” — {asked}, last {when(gap.last_asked)}")
    blocks.append(section(f"*{report.questions} question(s)* the knowledge base could not answer in the last "
                          f"{report.days} days, in {len(report.gaps)} group(s):\n" + "\n".join(lines)))
    if len(report.gaps) > SHOWN:
        blocks.append(context([f"{len(report.gaps) - SHOWN} more group(s): `askloop stats --json`"]))
    return blocks


def with_gaps(view: dict[str, Any], report: Any, after_header: str = "Satisfaction") -> dict[str, Any]:
    """`view` with the gap section inserted after the section that follows `after_header`."""
    blocks = list(view.get("blocks", []))
    at = len(blocks)
    for index, block in enumerate(blocks):
        if block.get("type") == "header" and block.get("text", {}).get("text") == after_header:
            at = min(index + 2, len(blocks))
            break
    extra = gap_blocks(report)
    if len(blocks) + len(extra) > HOME_BLOCK_LIMIT:
        return view
    return view | {"blocks": blocks[:at] + extra + blocks[at:]}
