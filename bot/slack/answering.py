"""Questions in, threaded answers out: mentions, DMs, thread follow-ups and `/askloop <q>`.

The answer is computed in a worker thread; when it takes longer than `slack_looking_after`
seconds (always, with a chat model configured) a "looking…" reply is posted first and then
replaced with `chat.update`, so nobody stares at silence.
"""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps, log
from bot.slack.posting import send
from feedback.errors import FeedbackError
from retrieval.answer import Answer
from retrieval.search import EmptyKnowledgeBase, QuestionError

_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")


def question_from(text: str, bot_user_id: str | None) -> str:
    """The question as a person wrote it: our mention removed, Slack's markup made readable.

    `<!channel>` becomes the plain words "@channel" (which cannot ping anyone), and Slack's
    `&amp;`/`&lt;`/`&gt;` become the characters the user typed.
    """
    text = text or ""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    text = _USER.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + (m.group(2) or m.group(1)).lstrip("@"), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _LINK.sub(lambda m: m.group(1) if not m.group(2) else f"{m.group(2)} ({m.group(1)})", text)
    text = html.unescape(text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Outcome:
    """What to post: a rendered answer, or a short notice when there is no answer."""

    text: str
    blocks: list[dict[str, Any]]
    answer: Answer | None = None
    answer_id: int | None = None


def compute(deps: BotDeps, question: str, user: str, origin: str, channel: str | None,
            thread_ts: str | None) -> tuple[Answer, int | None]:
    """Answer and record it (synchronous: runs in a worker thread)."""
    answered = deps.loop.answer(question, asker=user, origin=origin, channel=channel, thread_ts=thread_ts)
    return answered.answer, answered.answer_id


async def produce(deps: BotDeps, question: str, user: str, origin: str, channel: str | None,
                  thread_ts: str | None) -> Outcome:
    """The answer as a message; a one-line notice for bad questions; an apology on failure."""
    if not question:
        text = "Ask me a question after the mention, e.g. “@askloop how do I connect to the VPN?”"
        return Outcome(text, kit.notice_message(text)[1])
    try:
        answer, answer_id = await deps.work(compute, deps, question, user, origin, channel, thread_ts)
    except (QuestionError, EmptyKnowledgeBase, FeedbackError) as exc:
        text = f"I can't answer that: {kit.escape(exc)}"
        return Outcome(text, kit.notice_message(text)[1])
    except Exception:  # Chroma down, database down, a bug: log it, apologise, never a traceback
        log.exception("answering failed (channel=%s, thread=%s)", channel, thread_ts)
        return Outcome(kit.APOLOGY, kit.notice_message(kit.APOLOGY)[1])
    text, blocks = kit.answer_message(answer, answer_id, native_feedback=deps.native_feedback,
                                      question=question)
    return Outcome(text, blocks, answer, answer_id)


async def answer_in_thread(deps: BotDeps, client: AsyncWebClient, *, channel: str,
                           thread_ts: str | None, question: str, user: str, origin: str) -> None:
    """The whole flow for one question; every failure ends as a short message in the thread."""
    looking_ts: str | None = None
    task = asyncio.ensure_future(produce(deps, question, user, origin, channel, thread_ts))
    try:
        delay = 0.0 if deps.services.generates else deps.settings.slack_looking_after
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), timeout=delay) if delay > 0 \
                else None
        except asyncio.TimeoutError:
            outcome = None
        if outcome is None and not task.done():
            text, blocks = kit.notice_message(kit.LOOKING)
            response = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                                     text=text, blocks=blocks)
            looking_ts = str(response["ts"])
        outcome = await task
        ts = await send(deps, client, channel, outcome, thread_ts=thread_ts, update_ts=looking_ts)
        if thread_ts:
            deps.answered_threads.add(f"{channel}:{thread_ts}")
    except Exception:
        log.exception("could not deliver the answer (channel=%s, thread=%s)", channel, thread_ts)
        try:
            text, blocks = kit.notice_message(kit.APOLOGY)
            if looking_ts:
                await client.chat_update(channel=channel, ts=looking_ts, text=text, blocks=blocks)
            else:
                await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text,
                                              blocks=blocks)
        except Exception:
            log.exception("could not post the apology either")
        return
    if outcome.answer_id is not None:
        try:
            await deps.db(deps.loop.link_message, outcome.answer_id, channel, ts)
        except Exception:  # the answer stands; only reactions on it cannot be matched
            log.exception("answer %s was posted but not linked to its message", outcome.answer_id)


async def answered_here(deps: BotDeps, channel: str, thread_ts: str) -> bool:
    """Whether the feedback store has an answer of ours posted in this thread.

    Every replica records its answers there, so this sees threads answered by any of them
    without a Slack call. A database failure is logged and reads as "not known": the caller
    then asks Slack, so a database hiccup never silences a follow-up.
    """
    try:
        return await deps.db(deps.loop.answered_in_thread, channel, thread_ts)
    except Exception:
        log.exception("could not look up answers in thread %s:%s; asking Slack", channel, thread_ts)
        return False


async def bot_in_thread(deps: BotDeps, client: AsyncWebClient, channel: str, thread_ts: str,
                        bot_user_id: str | None, bot_id: str | None) -> bool:
    """Whether the bot has replied in this thread (so follow-ups there are for it).

    Cheapest first: threads this process answered are remembered; then the feedback store,
    which knows the threads every replica answered; only then Slack (`conversations.replies`,
    rate-limited), which still catches threads where the bot posted only a notice or an
    apology, answers whose message could not be linked, and any thread while the store
    cannot be read.
    """
    key = f"{channel}:{thread_ts}"
    if key in deps.answered_threads:
        return True
    if await answered_here(deps, channel, thread_ts):
        deps.answered_threads.add(key)
        return True
    try:
        response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
    except SlackApiError as exc:
        log.warning("conversations.replies failed for %s: %s", key, exc.response.get("error"))
        return False
    for message in response.get("messages") or []:
        if (bot_user_id and message.get("user") == bot_user_id) or \
                (bot_id and message.get("bot_id") == bot_id):
            deps.answered_threads.add(key)
            return True
    return False
