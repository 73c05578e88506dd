"""What every Slack listener needs, in one object: settings, the feedback loop, moderators.

The loop is synchronous (embedding, Chroma, SQL); listeners run it in worker threads so the
event loop keeps acknowledging Slack within its 3 seconds, and every such call has a deadline:
a stalled database must turn into a refusal or a retry, never into a listener that hangs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.services import Services
from bot.settings import Settings
from bot.slack.moderators import ModeratorDirectory
from feedback.loop import FeedbackLoop

log = logging.getLogger("askloop.slack")

T = TypeVar("T")

# Work done before Slack gets its answer (a vote from a reaction) must leave time for the reply.
ACK_DEADLINE = 2.0
# Work done after the ack (answering, deciding): generous, but never forever.
WORK_DEADLINE = 60.0


class Deadline(TimeoutError):
    """A call into the loop took longer than its deadline (the database or Chroma stalls)."""


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
    loop: FeedbackLoop
    moderators: ModeratorDirectory
    # Slack's native feedback_buttons where the workspace accepts them; plain buttons otherwise.
    native_feedback: bool = True
    answered_threads: LRUSet = field(default_factory=LRUSet)
    announced: LRUSet = field(default_factory=LRUSet)  # review items already posted (by anyone)
    review_retries: dict[str, tuple[int, float]] = field(default_factory=dict)  # failed posts: tries, next
    # message -> answer id of our answers (immutable once linked), so reactions skip a query
    answer_ids: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _db_pool: ThreadPoolExecutor | None = None
    _work_pool: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        """The database's own threads: one with SQLite (it takes one writer at a time, so no lock
        waits at all), a few with a server database."""
        if self._db_pool is None:
            workers = 1 if self.loop.store.is_sqlite else 8
            self._db_pool = ThreadPoolExecutor(workers, thread_name_prefix="askloop-db")
        return self._db_pool

    async def db(self, fn: Callable[..., T], *args: Any, timeout: float = ACK_DEADLINE, **kwargs: Any) -> T:
        """Run a short feedback-loop call (a vote, a lookup) off the event loop, with a deadline."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool(), functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise Deadline(f"{getattr(fn, '__name__', 'a database call')} took longer than {timeout:g}s") from None

    async def work(self, fn: Callable[..., T], *args: Any, timeout: float = WORK_DEADLINE, **kwargs: Any) -> T:
        """Run long work (retrieval, answering) in a worker thread, with a deadline."""
        if self._work_pool is None:
            self._work_pool = ThreadPoolExecutor(8, thread_name_prefix="askloop-work")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._work_pool, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise Deadline(f"{getattr(fn, '__name__', 'the work')} took longer than {timeout:g}s") from None

    async def answer_id_for(self, channel: str, ts: str) -> int | None:
        key = f"{channel}:{ts}"
        if key in self.answer_ids:
            return self.answer_ids[key]
        record = await self.db(self.loop.answer_for_message, channel, ts)
        if record is None:
            return None
        self.answer_ids[key] = record.id
        while len(self.answer_ids) > 10000:
            self.answer_ids.popitem(last=False)
        return record.id

    async def may_moderate(self, client: Any, user: str) -> bool:
        """A moderator by setting or Slack usergroup (refreshed here, asynchronously), so the
        loop's own check (which reads the same cache) agrees."""
        return await self.moderators.is_moderator(client, user) or self.loop.is_moderator(user)
