"""What every Slack listener needs, in one object: services, the feedback store, moderators.

Services and the FeedbackStore are synchronous (embedding, Chroma, SQL); listeners run them in
worker threads via `blocking` so the event loop keeps acknowledging Slack within its 3 seconds.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.services import Services
from bot.settings import Settings
from bot.slack.moderators import ModeratorDirectory
from feedback.store import FeedbackStore

log = logging.getLogger("askloop.slack")

T = TypeVar("T")


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run synchronous work (retrieval, SQL) off the event loop."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


class LRUSet:
    """A bounded set: remembers the most recent `size` keys."""

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        self._items[key] = None
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items


@dataclass
class BotDeps:
    settings: Settings
    services: Services
    store: FeedbackStore
    moderators: ModeratorDirectory
    # Slack's native feedback_buttons where the workspace accepts them; switched off for good
    # the first time Slack rejects the block (older clients, Enterprise policies).
    native_feedback: bool = True
    answered_threads: LRUSet = field(default_factory=LRUSet)

    @property
    def records_answers(self) -> bool:
        """Whether Services.answer records the answer itself (asker=, origin=, ...)."""
        return "asker" in inspect.signature(self.services.answer).parameters


def open_store(settings: Settings, moderators: ModeratorDirectory) -> FeedbackStore:
    """The feedback store with the Slack moderator directory as its permission check."""
    return FeedbackStore.from_settings(settings, is_moderator=moderators.contains)
