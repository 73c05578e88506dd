"""What every Slack listener needs, in one object: services, the feedback store, moderators.

Services and the FeedbackStore are synchronous (embedding, Chroma, SQL); listeners run them in
worker threads via `blocking` so the event loop keeps acknowledging Slack within its 3 seconds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
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
    announced: LRUSet = field(default_factory=LRUSet)  # review items already posted (by anyone)
    # message -> answer id of our answers (immutable once linked), so reactions skip a query
    answer_ids: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _db_pool: ThreadPoolExecutor | None = None

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run feedback-store work off the event loop, on the database's own threads.

        SQLite takes one writer at a time and makes concurrent writers sleep-and-retry, so
        with SQLite the bot funnels its store calls through one thread (no lock waits at all);
        a server database gets a few threads.
        """
        if self._db_pool is None:
            workers = 1 if str(self.store.url).startswith("sqlite") else 8
            self._db_pool = ThreadPoolExecutor(workers, thread_name_prefix="askloop-db")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, functools.partial(fn, *args, **kwargs))

    async def answer_id_for(self, channel: str, ts: str) -> int | None:
        key = f"{channel}:{ts}"
        if key in self.answer_ids:
            return self.answer_ids[key]
        record = await self.db(self.store.answer_for_message, channel, ts)
        if record is None:
            return None
        self.answer_ids[key] = record.id
        while len(self.answer_ids) > 10000:
            self.answer_ids.popitem(last=False)
        return record.id
