"""A small handbook (Markdown pages in tests/support/handbook) and conversations over it.

Each conversation is a question, then a follow-up that only makes sense in its thread, and a
phrase of the handbook the follow-up's answer must contain. Topic changes are follow-ups that
stand on their own and must leave the thread's topic.
"""

from __future__ import annotations

from pathlib import Path

HANDBOOK = Path(__file__).resolve().parent / "handbook"

# (first question, follow-up that leans on it, the handbook's words the follow-up's answer shows)
FOLLOW_UPS = [
    ("how do I connect to the VPN?", "how long is it valid?", "expire after 90 days"),
    ("how do I connect to the VPN?", "and on my phone?", "scan the QR code"),
    ("how do I submit expenses?", "what about meals?", "up to 50 euros"),
    ("how do I submit expenses?", "when do I get paid back?", "next monthly salary"),
    ("how do I request holidays?", "can I carry them over?", "carry over"),
    ("who is on call?", "is it paid?", "flat bonus"),
]

# (first question, a follow-up on another topic, the document it is about)
TOPIC_CHANGES = [
    ("how do I connect to the VPN?", "how do I submit expenses?", "expenses.md"),
    ("how do I connect to the VPN?", "what about a new laptop?", "laptop.md"),
    ("how do I request holidays?", "who carries the pager this week?", "oncall.md"),
]


def handbook_services(home: Path, embedder: object, **settings: object) -> object:
    """`Services` over the handbook, ingested in `home` (with the already loaded embedding model)."""
    from bot.services import Services
    from bot.settings import Settings

    services = Services(Settings(home=home, **settings))  # type: ignore[arg-type]
    services.__dict__["embedder"] = embedder
    services.ingestor.run([HANDBOOK])
    return services
