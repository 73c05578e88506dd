"""Who may approve: ASKLOOP_MODERATORS plus the members of ASKLOOP_MODERATOR_GROUP.

Group membership lives in Slack (`usergroups.users.list`), which is slow and rate-limited, so it
is cached for a few minutes. The feedback store's permission check is synchronous, so it reads
the cache through `contains`; the Slack handlers call `refresh` (async) before deciding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

GROUP_TTL_SECONDS = 300.0


class ModeratorDirectory:
    def __init__(self, users: Iterable[str] = (), group: str | None = None,
                 ttl: float = GROUP_TTL_SECONDS) -> None:
        self.users = {u for u in users if u}
        self.group = group or None
        self.ttl = ttl
        self._members: set[str] = set()
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def contains(self, user: str) -> bool:
        """From the configured list and the last known group membership (no network)."""
        return user in self.users or user in self._members

    async def refresh(self, client: AsyncWebClient, *, force: bool = False) -> None:
        if not self.group:
            return
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self.ttl:
                return
            try:
                response = await client.usergroups_users_list(usergroup=self.group)
                self._members = set(response.get("users") or [])
                self._fetched_at = time.monotonic()
            except SlackApiError as exc:
                # Keep the last known members: a Slack hiccup must not lock moderators out.
                log.error("could not list moderator group %s: %s", self.group,
                          exc.response.get("error"))

    async def is_moderator(self, client: AsyncWebClient, user: str) -> bool:
        if user in self.users:
            return True
        await self.refresh(client)
        return user in self._members
