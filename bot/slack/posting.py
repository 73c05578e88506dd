"""Sending an answer to Slack: what to do when Slack refuses the message, and nothing more.

- `msg_blocks_too_long` (Slack's total size limit is undocumented): the answer is rendered
  again with a smaller budget and sent again, at most `MAX_SHRINKS` times;
- `invalid_blocks` whose error points at the native feedback block (a workspace or client that
  does not take `feedback_buttons`): the answer is sent with plain 👍/👎 buttons, and the bot
  keeps to plain buttons from then on. An `invalid_blocks` pointing anywhere else is a bug in
  a message, not the workspace's refusal of the feature: it propagates like every other error,
  and native buttons stay on;
- rate limits (429 with Retry-After) and connection errors are retried by the client's retry
  handlers (`app.make_client`), before anything here sees them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps, log

MAX_SHRINKS = 3
SHRINK_FACTOR = 0.6  # each retry renders the answer within 60% of the previous budget
_POINTER = re.compile(r"\[json-pointer:/blocks/(\d+)")

Message = tuple[str, list[dict[str, Any]]]


class Postable(Protocol):
    """What `send` posts: the rendered message and, for an answer, what it was rendered from."""

    text: str
    blocks: list[dict[str, Any]]
    answer: Any
    answer_id: int | None


def error_pointers(response: Mapping[str, Any]) -> list[int]:
    """The indexes of the blocks Slack's error messages point at (`[json-pointer:/blocks/N…]`)."""
    metadata = response.get("response_metadata") or {}
    messages = list(metadata.get("messages") or []) + list(response.get("errors") or [])
    return [int(n) for message in messages for n in _POINTER.findall(str(message))]


def refuses_native_feedback(response: Mapping[str, Any], blocks: list[dict[str, Any]]) -> bool:
    """Whether Slack's `invalid_blocks` is about the native feedback block, and only about it."""
    if response.get("error") != "invalid_blocks":
        return False
    pointers = error_pointers(response)
    return bool(pointers) and all(
        p < len(blocks) and kit.is_native_feedback(blocks[p]) for p in pointers)


async def deliver(client: AsyncWebClient, channel: str, render: Callable[[int, bool], Message], *,
                  native: bool, thread_ts: str | None = None,
                  update_ts: str | None = None) -> tuple[str, bool]:
    """Post (or update) the message `render(budget, native_feedback)` makes.

    Returns Slack's ts and whether native feedback buttons are still on. Bounded: at most
    `MAX_SHRINKS` smaller renderings and one with plain buttons; any other error propagates.
    """
    budget = kit.ANSWER_BUDGET
    shrinks = 0
    text, blocks = render(budget, native)
    while True:
        try:
            if update_ts:
                response = await client.chat_update(channel=channel, ts=update_ts, text=text,
                                                    blocks=blocks)
            else:
                response = await client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=text, blocks=blocks,
                    unfurl_links=False, unfurl_media=False)
            return str(response["ts"]), native
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error == "msg_blocks_too_long" and shrinks < MAX_SHRINKS:
                shrinks += 1
                budget = int(budget * SHRINK_FACTOR)
                log.warning("Slack found the message too long (%d bytes of blocks); "
                            "sending it within %d", kit.size(blocks), budget)
            elif native and refuses_native_feedback(exc.response, blocks):
                native = False
                log.warning("Slack refused the native feedback buttons; using plain buttons")
            else:
                raise
            again = render(budget, native)
            if again == (text, blocks):  # nothing smaller to offer (a notice): Slack's answer stands
                raise
            text, blocks = again


async def send(deps: BotDeps, client: AsyncWebClient, channel: str, outcome: Postable, *,
               thread_ts: str | None = None, update_ts: str | None = None) -> str:
    """Post (or update) an outcome in a thread: an answer is re-rendered when Slack refuses it
    (see the module); a notice is sent as it is."""
    answer = outcome.answer
    again = getattr(outcome, "render", None)
    if answer is None:
        def render(budget: int, native: bool) -> Message:
            return outcome.text, outcome.blocks
    else:
        def render(budget: int, native: bool) -> Message:
            if budget == kit.ANSWER_BUDGET and native == deps.native_feedback:
                return outcome.text, outcome.blocks  # as produced
            if again is not None:  # drawn again by whoever drew it first, with all it had
                result: Message = again(budget, native)
                return result
            return kit.answer_message(answer, outcome.answer_id, native_feedback=native,
                                      question=answer.question, budget=budget)

    ts, native = await deliver(client, channel, render, native=deps.native_feedback,
                               thread_ts=thread_ts, update_ts=update_ts)
    deps.native_feedback = native  # off for good once Slack refused the block itself
    return ts
