"""Telling one person something: an ephemeral message where they pressed, else a DM.

Used whenever the loop refuses something or a write did not happen, so nobody is left believing
their vote, correction or decision counted when it did not.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.deps import log

NOT_SAVED = ("I couldn't save that just now (the feedback database is not answering), so it did "
             "not count. Please try again in a minute.")


def where(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(user, channel, thread) of an interaction: where a reply to the person belongs."""
    user = (body.get("user") or {}).get("id", "") or body.get("user_id", "")
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") \
        or body.get("channel_id")
    message = body.get("message") or {}
    return user, channel, message.get("thread_ts")


async def tell(client: AsyncWebClient, user: str, text: str, *, channel: str | None = None,
               thread_ts: str | None = None, blocks: list[dict[str, Any]] | None = None) -> None:
    """A message only `user` sees: ephemeral in `channel` (in the thread), else a DM."""
    try:
        if channel:
            await client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks,
                                            thread_ts=thread_ts)
        else:
            await client.chat_postMessage(channel=user, text=text, blocks=blocks)
    except Exception:
        log.exception("could not tell %s: %s", user, text[:200])


async def ephemeral(client: AsyncWebClient, body: dict[str, Any], text: str,
                    blocks: list[dict[str, Any]] | None = None) -> None:
    """Tell the person who pressed a button (where they pressed it)."""
    user, channel, thread_ts = where(body)
    await tell(client, user, text, channel=channel, thread_ts=thread_ts, blocks=blocks)
