"""The bolt AsyncApp: which Slack events, actions, views and commands go to which handler.

Every listener acknowledges first and does its work afterwards in the background (bolt acks
events before their listener runs; action listeners call `ack()` first), so Slack gets its
answer within 3 seconds whatever retrieval costs. Event deliveries are claimed by
`event_id` in the feedback database before anything happens, so a retried delivery (to this
replica or another) never answers or votes twice.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.settings import Settings
from bot.slack import blocks as kit
from bot.slack.answering import answer_in_thread, bot_in_thread, question_from
from bot.slack.deps import BotDeps, log
from bot.slack.feedback import on_reaction, on_vote_button, open_correction_modal, submit_correction
from bot.slack.moderation import (
    on_command,
    on_edit,
    on_review,
    on_rollback,
    publish_home,
    submit_edit,
)
from bot.slack.moderators import ModeratorDirectory

# Message subtypes that are still a person writing (everything else: edits, joins, bots).
HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}


def make_client(settings: Settings, *, max_rate_limit_retries: int = 3) -> AsyncWebClient:
    """The Web API client: Slack's URL (or a stand-in's), retrying 429s after Retry-After."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries),
        ],
    )


def make_deps(settings: Settings, services: Services | None = None) -> BotDeps:
    """Services and the feedback store (one engine), with Slack's moderator group as a check."""
    moderators = ModeratorDirectory(settings.moderators, settings.moderator_group)
    if services is None:
        services = Services(settings, is_moderator=moderators.contains)
    store = services.feedback  # one engine for answers, votes and moderation
    return BotDeps(
        settings=settings,
        services=services,
        store=store,
        moderators=moderators,
        native_feedback=settings.slack_native_feedback,
    )


def guarded(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Background work never dies silently: log the error (Slack sees nothing of it)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await fn(*args, **kwargs)
        except Exception:
            log.exception("Slack listener %s failed", fn.__name__)

    return run


def build_app(deps: BotDeps, client: AsyncWebClient | None = None, *,
              verify_requests: bool = True) -> AsyncApp:
    settings = deps.settings
    app = AsyncApp(
        client=client or make_client(settings),
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=verify_requests,
        process_before_response=False,
        # bolt ignores the bot's own events itself; other bots are filtered below
        ignoring_self_events_enabled=True,
    )

    async def first_delivery(body: dict[str, Any]) -> bool:
        event_id = body.get("event_id")
        if not event_id:
            return True
        first = await deps.db(deps.store.claim_event, str(event_id))
        if not first:
            log.info("ignoring a retried delivery of %s", event_id)
        return first

    async def ask(body: dict[str, Any], client: AsyncWebClient, *, channel: str,
                  thread_ts: str | None, text: str, user: str, origin: str,
                  bot_user_id: str | None) -> None:
        try:
            if not await first_delivery(body):
                return
        except Exception:
            log.exception("could not claim event %s", body.get("event_id"))
            text_, blocks = kit.notice_message(kit.APOLOGY)
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text_,
                                          blocks=blocks)
            return
        await answer_in_thread(deps, client, channel=channel, thread_ts=thread_ts,
                               question=question_from(text, bot_user_id), user=user, origin=origin)

    @guarded
    async def answer_mention(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient,
                             context: Any) -> None:
        if event.get("bot_id") or event.get("subtype") not in HUMAN_SUBTYPES or not event.get("user"):
            return
        if str(event.get("channel", "")).startswith("D"):
            return  # a direct message: answered from its message.im event, not twice
        await ask(body, client, channel=event["channel"],
                  thread_ts=event.get("thread_ts") or event["ts"], text=event.get("text", ""),
                  user=event["user"], origin="slack_mention", bot_user_id=context.get("bot_user_id"))

    @guarded
    async def answer_message(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient,
                             context: Any) -> None:
        bot_user_id = context.get("bot_user_id")
        user = event.get("user")
        if event.get("bot_id") or event.get("subtype") not in HUMAN_SUBTYPES or not user \
                or user == bot_user_id:
            return
        text = event.get("text") or ""
        thread_ts = event.get("thread_ts")
        if event.get("channel_type") == "im":
            origin = "slack_dm"
            thread_ts = thread_ts or event["ts"]
        else:
            # In channels only follow-ups in a thread the bot answered; mentions are app_mention's.
            if not thread_ts or thread_ts == event.get("ts"):
                return
            if bot_user_id and f"<@{bot_user_id}" in text:
                return
            if not await bot_in_thread(deps, client, event["channel"], thread_ts, bot_user_id,
                                       context.get("bot_id")):
                return
            origin = "slack_thread"
        await ask(body, client, channel=event["channel"], thread_ts=thread_ts, text=text,
                  user=user, origin=origin, bot_user_id=bot_user_id)

    def reaction(added: bool) -> Callable[..., Awaitable[None]]:
        @guarded
        async def record_reaction(body: dict[str, Any], context: Any) -> None:
            await on_reaction(deps, body, added=added, bot_user_id=context.get("bot_user_id"))

        record_reaction.__name__ = f"record_reaction_{'added' if added else 'removed'}"
        return record_reaction

    @guarded
    async def vote_button(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await on_vote_button(deps, client, body)

    @guarded
    async def suggest_button(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await open_correction_modal(deps, client, body)

    @guarded
    async def approve_button(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        await on_review(deps, client, body, respond, approve=True)

    @guarded
    async def reject_button(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        await on_review(deps, client, body, respond, approve=False)

    @guarded
    async def edit_button(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await on_edit(deps, client, body)

    @guarded
    async def rollback_button(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await on_rollback(deps, client, body)

    @guarded
    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish_home(deps, client, event["user"])

    async def correction_submitted(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await submit_correction(deps, client, ack, body)

    async def edit_submitted(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await submit_edit(deps, client, ack, body)

    async def command(ack: Any, respond: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        await on_command(deps, client, ack, respond, command)

    # Events are acknowledged by bolt before the listener starts; actions ack first thing. The
    # work then runs in the background (plain listeners, not lazy ones: those deep-copy every
    # request, which costs more than the work itself on the reaction path).
    app.event("app_mention")(answer_mention)
    app.event("message")(answer_message)
    app.event("reaction_added")(reaction(True))
    app.event("reaction_removed")(reaction(False))
    app.event("app_home_opened")(home_opened)
    for action_id in (kit.VOTE_UP, kit.VOTE_DOWN, kit.FEEDBACK_BUTTONS):
        app.action(action_id)(vote_button)
    app.action(kit.SUGGEST)(suggest_button)
    app.action(kit.REVIEW_APPROVE)(approve_button)
    app.action(kit.REVIEW_REJECT)(reject_button)
    app.action(kit.REVIEW_EDIT)(edit_button)
    app.action(kit.ROLLBACK)(rollback_button)
    app.view(kit.CORRECTION_MODAL)(correction_submitted)
    app.view(kit.EDIT_MODAL)(edit_submitted)
    app.command("/askloop")(command)
    return app
