"""`/askloop`: ask (the answer is posted in the channel), `stats`, `review` (moderators), `help`.

A slash command is acknowledged at once; the work follows. A replayed command (same trigger) is
answered once. Text that looks like a command but is none (`/askloop /frobnicate`, `/askloop +5`,
`/askloop stat`) is answered "unknown command" in the acknowledgement, never asked or recorded
(`bot.command_words`).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.command_words import unknown_command
from bot.slack import blocks as kit
from bot.slack.answering import answer_in_thread, question_from
from bot.slack.deps import BotDeps, log
from bot.slack.home import stats_figures
from bot.slack.moderation import REFUSAL
from bot.slack.replies import NOT_SAVED

HELP = ("*askloop* answers from the team's knowledge base.\n"
        "• `/askloop <question>`: ask (the answer is posted in this channel)\n"
        "• `/askloop stats`: satisfaction and the state of the feedback loop\n"
        "• `/askloop review`: the review queue (moderators)")
WORDS = {"help", "stats", "review"}


def subcommand(text: str) -> str:
    """`help`, `stats`, `review`, `unknown` (a command that does not exist), or `ask`."""
    word = (text or "").strip().lower()
    if not word:
        return "help"
    if word in WORDS:
        return word
    return "unknown" if unknown_command(text.strip(), sorted(WORDS)) else "ask"


async def ack_command(ack: Any, command: dict[str, Any]) -> None:
    """At once: help, and "unknown command", are the ack itself; everything else is acknowledged
    empty."""
    text = command.get("text", "") or ""
    what = subcommand(text)
    if what == "help":
        await ack(text=HELP)
    elif what == "unknown":
        refusal = unknown_command(text.strip(), sorted(WORDS)) or "unknown command"
        await ack(text=f"{kit.escape(refusal)}. Nothing was asked.\n\n{HELP}")
    else:
        await ack()


async def run_command(deps: BotDeps, client: AsyncWebClient, respond: Any, command: dict[str, Any]) -> None:
    """After the ack."""
    text = (command.get("text") or "").strip()
    user, channel = command.get("user_id", ""), command.get("channel_id", "")
    what = subcommand(text)
    if what in {"help", "unknown"}:
        return
    try:
        if not await deps.db(deps.loop.claim, f"command:{command.get('trigger_id')}"):
            return  # a replayed command
    except Exception:
        log.exception("could not claim /askloop %s", what)
        await respond(text=NOT_SAVED, response_type="ephemeral")
        return
    if what == "stats":
        try:
            figures = await deps.db(stats_figures, deps, timeout=10.0)
            body = "\n".join(f"• {kit.escape(k)}: {kit.escape(v)}" for k, v in figures.items())
        except Exception:
            log.exception("stats failed")
            body = kit.APOLOGY
        await respond(text=f"*askloop stats*\n{body}", response_type="ephemeral")
        return
    if what == "review":
        if not await deps.may_moderate(client, user):
            await respond(text=REFUSAL, response_type="ephemeral")
            return
        page = await deps.db(deps.loop.review_queue, 1, 20)
        text_, blocks = kit.queue_message(page.items)
        await respond(text=text_, blocks=blocks, response_type="ephemeral")
        return
    question = question_from(text, None)
    try:
        posted = await client.chat_postMessage(channel=channel, text=f"<@{user}> asked: {kit.escape(question)}",
                                               unfurl_links=False, unfurl_media=False)
    except Exception as exc:
        log.info("cannot post in %s (%s); answering privately", channel, exc)
        await respond(text="I can't post in this conversation: invite me with `/invite @askloop`, "
                           "or ask me in a direct message.", response_type="ephemeral")
        return
    await answer_in_thread(deps, client, channel=posted["channel"], thread_ts=posted["ts"], question=question,
                           user=user, origin="slack_command")
