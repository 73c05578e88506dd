"""Questions in, threaded answers out: mentions, DMs, thread follow-ups and `/askloop <q>`.

The answer is computed in a worker thread. While it is, the question wears a 👀 reaction
(`slack_working_reaction`), removed once the answer is posted: it shows the bot is on it
without a message, so the thread's followers get one notification, for the answer. Only a
generated answer (a chat model) that takes longer than `slack_looking_after` seconds gets a
"Looking that up…" reply first, replaced in place by the answer.

A follow-up is answered with the thread's earlier answers (`earlier`), which the feedback loop
reads as the conversation (see `FeedbackLoop.answer`); an answer read with the thread's topic
says so above it. An abstention offers "Ask an expert" when an expert group is configured.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack import conversation_blocks as talk
from bot.slack.deps import BotDeps, log
from bot.slack.posting import send
from feedback.errors import FeedbackError
from feedback.records import AnswerRecord
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
    """What to post: a rendered answer, or a short notice when there is no answer. `render`
    draws the answer again (smaller, or without native buttons) when Slack refuses it, with
    everything the first rendering had."""

    text: str
    blocks: list[dict[str, Any]]
    answer: Answer | None = None
    answer_id: int | None = None
    render: Callable[[int, bool], tuple[str, list[dict[str, Any]]]] | None = None


def compute(deps: BotDeps, question: str, user: str, origin: str, channel: str | None,
            thread_ts: str | None, earlier: Sequence[AnswerRecord] = ()) -> tuple[Answer, int | None]:
    """Answer and record it (synchronous: runs in a worker thread)."""
    answered = deps.loop.answer(question, asker=user, origin=origin, channel=channel, thread_ts=thread_ts,
                                earlier=earlier)
    return answered.answer, answered.answer_id


def shown_question(question: str, answer: Answer) -> str:
    """The question above an answer; for a follow-up read with the thread's topic, that topic
    too, so readers see what was answered."""
    topic = answer.extras.get("read_with")
    return f"{question} (in this thread: {topic})" if topic else question


async def produce(deps: BotDeps, question: str, user: str, origin: str, channel: str | None,
                  thread_ts: str | None, earlier: Sequence[AnswerRecord] = ()) -> Outcome:
    """The answer as a message; a one-line notice for bad questions; an apology on failure."""
    if not question:
        text = "Ask me a question after the mention, e.g. “@askloop how do I connect to the VPN?”"
        return Outcome(text, kit.notice_message(text)[1])
    try:
        answer, answer_id = await deps.work(compute, deps, question, user, origin, channel, thread_ts, earlier)
    except (QuestionError, EmptyKnowledgeBase, FeedbackError) as exc:
        text = f"I can't answer that: {kit.escape(exc)}"
        return Outcome(text, kit.notice_message(text)[1])
    except Exception:  # Chroma down, database down, a bug: log it, apologise, never a traceback
        log.exception("answering failed (channel=%s, thread=%s)", channel, thread_ts)
        return Outcome(kit.APOLOGY, kit.notice_message(kit.APOLOGY)[1])
    shown = shown_question(question, answer)
    expert = answer.abstained and answer_id is not None and bool(deps.settings.expert_group) \
        and talk.experts_can_see(channel)

    def render(budget: int, native: bool) -> tuple[str, list[dict[str, Any]]]:
        text, blocks = kit.answer_message(answer, answer_id, native_feedback=native, question=shown,
                                          budget=budget)
        if expert and answer_id is not None:
            text, blocks = talk.with_expert_button(text, blocks, answer_id)
        return text, blocks

    text, blocks = render(kit.ANSWER_BUDGET, deps.native_feedback)
    return Outcome(text, blocks, answer, answer_id, render)


async def react(client: AsyncWebClient, channel: str, ts: str, name: str, *, add: bool) -> None:
    """Add or remove the bot's reaction on a message; a refusal (no `reactions:write`, an
    archived channel, a reaction already there) is logged and changes nothing else."""
    try:
        if add:
            await client.reactions_add(channel=channel, timestamp=ts, name=name)
        else:
            await client.reactions_remove(channel=channel, timestamp=ts, name=name)
    except SlackApiError as exc:
        log.info("could not %s :%s: on %s:%s (%s)", "add" if add else "remove", name, channel, ts,
                 exc.response.get("error"))
    except Exception as exc:
        log.info("could not %s :%s: on %s:%s (%s)", "add" if add else "remove", name, channel, ts, exc)


async def answer_in_thread(deps: BotDeps, client: AsyncWebClient, *, channel: str,
                           thread_ts: str | None, question: str, user: str, origin: str,
                           question_ts: str | None = None, earlier: Sequence[AnswerRecord] = ()) -> None:
    """The whole flow for one question; every failure ends as a short message in the thread.

    `question_ts`: the person's message, which wears the working reaction until the answer is
    posted and linked; `earlier`: the thread's answers so far, when the question is a follow-up.
    """
    reaction = deps.settings.slack_working_reaction if question_ts else ""
    reacting = asyncio.ensure_future(react(client, channel, question_ts or "", reaction, add=True)) \
        if reaction else None
    try:
        await deliver_answer(deps, client, channel=channel, thread_ts=thread_ts, question=question, user=user,
                             origin=origin, earlier=earlier)
    finally:
        if reacting is not None:
            await reacting
            await react(client, channel, question_ts or "", reaction, add=False)


async def deliver_answer(deps: BotDeps, client: AsyncWebClient, *, channel: str, thread_ts: str | None,
                         question: str, user: str, origin: str, earlier: Sequence[AnswerRecord]) -> None:
    """Compute, post (after a placeholder, for a slow generated answer) and link the answer."""
    looking_ts: str | None = None
    task = asyncio.ensure_future(produce(deps, question, user, origin, channel, thread_ts, earlier))
    try:
        # Only a generated answer may be slow enough for a placeholder; extractive ones are not.
        delay = deps.settings.slack_looking_after if deps.services.generates else None
        outcome: Outcome | None = None
        if delay is not None and delay > 0:
            try:
                outcome = await asyncio.wait_for(asyncio.shield(task), timeout=delay)
            except asyncio.TimeoutError:
                outcome = None
        if delay is not None and outcome is None and not task.done():
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
