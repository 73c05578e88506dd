"""Block Kit of the conversation: "Ask an expert", the offer to suggest a reply, provenance.

Like every message builder, these escape whatever people wrote; the only markup of our own
is the user group mention of "Ask an expert" (`<!subteam^S…>`) and mentions of user ids.
"""

from __future__ import annotations

import json
from typing import Any

from bot.slack import blocks as kit
from bot.slack.text import escape, link, safe

Block = dict[str, Any]

# action ids: the listeners in app.py are registered on these names
ASK_EXPERT = "askloop_ask_expert"
SUGGEST_REPLY = "askloop_suggest_reply"
DISMISS_OFFER = "askloop_dismiss_offer"

VALUE_LIMIT = 2000  # characters of a button's value
QUESTION_SHOWN = 300  # characters of a question quoted in these messages
THREAD_ORIGIN = "slack_thread"  # a correction suggested from a reply in a conversation


def experts_can_see(channel: str | None) -> bool:
    """Whether mentioning the expert group in this conversation reaches them: not in a direct
    message, which nobody else can read."""
    return bool(channel) and not str(channel).startswith("D")


def expert_button(answer_id: int) -> Block:
    """The "Ask an expert" button, under an abstention or after a 👎."""
    return {"type": "actions", "block_id": f"expert-{answer_id}",
            "elements": [kit.button("🙋 Ask an expert", ASK_EXPERT, str(answer_id))]}


def with_expert_button(text: str, blocks: list[Block], answer_id: int) -> tuple[str, list[Block]]:
    """An answer message with "Ask an expert" added at the end (an abstention)."""
    return kit.fit(text, [*blocks, expert_button(answer_id)])


def after_downvote(answer_id: int, opening: str) -> tuple[str, list[Block]]:
    """What the person who marked an answer 👎 sees (only them): `opening` (ours), and the button."""
    text = f"{opening} Ask the experts in this thread?"
    return kit.fit(text, [kit.section(text), expert_button(answer_id)])


def expert_request(group: str, asker: str, question: str, presser: str, abstained: bool) -> tuple[str, list[Block]]:
    """Posted in the thread: the expert group mentioned, with the question and why."""
    why = "I couldn't find a good answer in the knowledge base" if abstained \
        else "my answer was marked as not helpful"
    quoted = safe(question, QUESTION_SHOWN)
    body = (f"<!subteam^{escape(group)}> could someone help here? <@{escape(asker)}> asked “{quoted}” and "
            f"{why}. If you reply in this thread, I'll offer to suggest your reply as the answer "
            "(a moderator reviews it first).")
    note = f"Asked for by <@{escape(presser)}>" if presser and presser != asker else ""
    blocks = [kit.section(body)] + ([kit.context([note])] if note else [])
    return kit.fit(f"Could an expert help with “{quoted}”?", blocks)


def offer_value(answer_id: int, reply_ts: str, replier: str, text: str) -> str | None:
    """The accept button's value (everything the press needs); None when the reply is too
    long to carry (more than about 1,900 characters)."""
    value = json.dumps({"a": answer_id, "ts": reply_ts, "u": replier, "t": text}, ensure_ascii=False)
    return value if len(value) <= VALUE_LIMIT else None


def parse_offer(value: str) -> dict[str, Any]:
    """The offer behind an accept button; ValueError for anything else."""
    try:
        data = json.loads(value or "")
    except ValueError:
        raise ValueError("not an offer") from None
    if not isinstance(data, dict) or not isinstance(data.get("a"), int) or not all(
            isinstance(data.get(k), str) and data.get(k) for k in ("ts", "u", "t")):
        raise ValueError("not an offer")
    return data


def offer(question: str, value: str, answer_id: int) -> tuple[str, list[Block]]:
    """Shown only to a teammate who replied after an abstention or a 👎."""
    text = (f"Your reply may answer “{safe(question, QUESTION_SHOWN)}”. Suggest it as the answer, so I can "
            "give it next time? A moderator reviews it first.")
    actions = {"type": "actions", "block_id": f"offer-{answer_id}", "elements": [
        kit.button("Suggest it as the answer", SUGGEST_REPLY, value, "primary"),
        kit.button("No thanks", DISMISS_OFFER, str(answer_id)),
    ]}
    return kit.fit(text, [kit.section(text), actions])


def provenance(correction: Any) -> Block | None:
    """For the review message: where a correction came from, when it came from a conversation."""
    permalink = getattr(correction, "permalink", None)
    if getattr(correction, "origin", None) != THREAD_ORIGIN and not permalink:
        return None
    where = link(permalink, "their reply in the thread") if permalink else "their reply in the thread"
    return kit.context([f"💬 Suggested from {where} by <@{escape(correction.user)}>"])


def with_provenance(blocks: list[Block], correction: Any) -> list[Block]:
    """A correction's review blocks with its provenance above the buttons."""
    line = provenance(correction)
    if line is None:
        return blocks
    at = next((i for i, b in enumerate(blocks) if b.get("type") == "actions"), len(blocks))
    return [*blocks[:at], line, *blocks[at:]]
