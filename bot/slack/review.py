"""The review channel: every pending correction and proposal is posted there once, and kept.

An item is claimed (by key, across replicas) before it is posted, so two replicas never post it
twice; when the post fails (the bot is not in the channel, Slack is down) the claim is released,
so the next check posts it again — an item is never lost between "claimed" and "posted". A
backlog is posted at about one message a second (Slack's pace for a channel), and `/askloop
review` and App Home always list what is waiting, posted or not.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.conversation_blocks import with_provenance
from bot.slack.deps import BotDeps, log

POST_INTERVAL = 1.0  # seconds between posts to one channel (a proposal waits for its evaluation)
RETRY_FIRST, RETRY_MAX = 5.0, 600.0  # a failed post is tried again after 5 s, doubling up to 10 min


def review_message(deps: BotDeps, kind: str, item_id: int) -> tuple[str, list[dict[str, Any]]]:
    """The review message for an item as it stands now (synchronous)."""
    loop = deps.loop
    if kind == "correction":
        correction = loop.correction(item_id)
        text, blocks = kit.correction_review(correction, loop.get_answer(correction.answer_id))
        blocks = with_provenance(blocks, correction)  # a reply suggested from a conversation: where
        if correction.status != "pending":
            verdict = "Approved" if correction.status == "approved" else "Rejected"
            if correction.status == "approved" and (correction.original_text is not None
                                                    or correction.original_source_ref is not None):
                verdict = "Edited and approved"
            text, blocks = kit.decided(blocks, verdict, correction.decided_by or "?", correction.decided_at,
                                       correction.note)
        return text, blocks
    proposal = loop.proposal(item_id)
    text, blocks = kit.proposal_review(proposal)
    if proposal.status in {"applied", "rejected"}:
        override = " with an override" if proposal.override else ""
        verdict = ("Rejected" if proposal.status == "rejected"
                   else f"Approved{override} and applied as version {proposal.applied_version}")
        text, blocks = kit.decided(blocks, verdict, proposal.decided_by or "?", proposal.decided_at, proposal.note)
    return text, blocks


async def announce(deps: BotDeps, client: AsyncWebClient, kind: str, item_id: int) -> bool:
    """Post an item to the review channel once; True when this call posted it."""
    channel = deps.settings.review_channel
    if not channel:
        return False
    key = f"review-post:{kind}:{item_id}"
    if key in deps.announced:
        return False
    attempts, next_at = deps.review_retries.get(key, (0, 0.0))
    if time.monotonic() < next_at:
        return False
    try:
        if not await deps.db(deps.loop.claim, key):
            deps.announced.add(key)
            return False
    except Exception:
        log.exception("could not claim the review post of %s %s", kind, item_id)
        return False
    try:
        text, blocks = await deps.db(review_message, deps, kind, item_id)
        await client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False,
                                      unfurl_media=False)
    except Exception as exc:
        reason = exc.response.get("error") if isinstance(exc, SlackApiError) else f"{exc.__class__.__name__}: {exc}"
        wait = min(RETRY_MAX, RETRY_FIRST * 2**attempts)
        deps.review_retries[key] = (attempts + 1, time.monotonic() + wait)
        log.error("could not post %s %s to the review channel (%s); trying again in %.0f s", kind, item_id,
                  reason, wait)
        try:
            await deps.db(deps.loop.release, key)
        except Exception:
            log.exception("could not release the review post of %s %s", kind, item_id)
        return False
    deps.announced.add(key)
    deps.review_retries.pop(key, None)
    return True


async def announce_pending(deps: BotDeps, client: AsyncWebClient) -> int:
    """Post every open item not yet posted, paced; returns how many were posted."""
    page, posted = 1, 0
    while True:
        review = await deps.db(deps.loop.review_queue, page, 100)
        for item in review.items:
            if item.kind == "proposal" and item.status == "pending":
                continue  # still being evaluated: posted once the gate has measured it
            if await announce(deps, client, item.kind, item.id):
                posted += 1
                await asyncio.sleep(POST_INTERVAL)
        if page >= review.pages:
            return posted
        page += 1


async def watch_review_queue(deps: BotDeps, client: AsyncWebClient) -> None:
    """Background task of `askloop serve`: announce new proposals and corrections, and retry
    the ones whose post failed."""
    interval = deps.settings.slack_review_poll
    while interval > 0:
        try:
            await announce_pending(deps, client)
        except Exception:
            log.exception("review queue check failed")
        await asyncio.sleep(interval)
