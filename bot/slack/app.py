"""The bolt AsyncApp: which Slack events, actions, views and commands go to which handler.

The app runs with `process_before_response=True`, so a listener's acknowledgement is the HTTP
response, and each listener is split in two:
- what must be settled before Slack gets its answer runs in the ack function: a 👍/👎 reaction
  is recorded there (a failure answers 500 and Slack delivers the event again), a form is checked
  there (errors shown inline), a form opens there (the trigger expires in 3 seconds);
- everything slow — answering, deciding, posting — runs in lazy listeners after the ack.
Event deliveries, button presses, commands and form submissions are claimed by key in the
feedback database, so a retried or replayed delivery (to this replica or another) is processed
once.
"""

from __future__ import annotations

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
from bot.slack import conversation_blocks as talk
from bot.slack.commands import ack_command, run_command
from bot.slack.conversation import on_mention, on_message
from bot.slack.corrections import check_submission, document_options, fill_form, open_form, store_submission
from bot.slack.deps import BotDeps, Deadline, log
from bot.slack.home import publish_home
from bot.slack.moderation import check_edit, fill_edit, on_decision, on_rollback, open_edit, store_edit
from bot.slack.moderators import ModeratorDirectory
from bot.slack.thread_learning import after_downvote, on_ask_expert, on_dismiss_offer, on_suggest_reply
from bot.slack.votes import on_reaction, on_vote_button
from feedback.errors import DatabaseUnavailable, is_database_failure

# Message subtypes that are still a person writing (everything else: edits, joins, bots).
HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}

Listener = Callable[..., Awaitable[None]]


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


def make_deps(settings: Settings, services: Services | None = None, *, events: Any = None) -> BotDeps:
    """The feedback loop (one engine), with Slack's moderator group as an extra check."""
    moderators = ModeratorDirectory(settings.moderators, settings.moderator_group)
    if services is None:
        services = Services(settings, is_moderator=moderators.contains, events=events)
    return BotDeps(settings=settings, services=services, loop=services.loop, moderators=moderators,
                   native_feedback=settings.slack_native_feedback)


async def acknowledge(ack: Any) -> None:
    """The ack of a listener whose work is all lazy."""
    await ack()


def is_person(event: dict[str, Any]) -> bool:
    """A message or mention written by a person (not a bot, an edit or a join)."""
    return not event.get("bot_id") and event.get("subtype") in HUMAN_SUBTYPES and bool(event.get("user"))


def build_app(deps: BotDeps, client: AsyncWebClient | None = None, *, verify_requests: bool = True) -> AsyncApp:
    settings = deps.settings
    app = AsyncApp(
        client=client or make_client(settings),
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=verify_requests,
        process_before_response=True,
        # bolt ignores the bot's own events itself; other bots are filtered by `is_person`
        ignoring_self_events_enabled=True,
    )

    async def person(event: dict[str, Any]) -> bool:
        return is_person(event)

    async def answer_mention(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient,
                             context: Any) -> None:
        await on_mention(deps, client, body, event, context.get("bot_user_id"))

    async def answer_message(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient,
                             context: Any) -> None:
        await on_message(deps, client, body, event, context.get("bot_user_id"), context.get("bot_id"))

    def reaction(added: bool) -> Listener:
        async def record_reaction(body: dict[str, Any], context: Any) -> None:
            # Before the response: a failure answers 500 and Slack delivers the event again.
            await on_reaction(deps, body, added=added, bot_user_id=context.get("bot_user_id"))

        record_reaction.__name__ = f"record_reaction_{'added' if added else 'removed'}"
        return record_reaction

    async def offer_expert(body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await after_downvote(deps, client, body, context.get("bot_user_id"))

    async def ask_expert(body: dict[str, Any], client: AsyncWebClient) -> None:
        await on_ask_expert(deps, client, body)

    async def suggest_reply(body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await on_suggest_reply(deps, client, body, respond)

    async def dismiss_offer(respond: Any) -> None:
        await on_dismiss_offer(respond)

    async def vote_later(body: dict[str, Any], client: AsyncWebClient) -> None:
        await on_vote_button(deps, client, body)

    async def correction_form(body: dict[str, Any], client: AsyncWebClient) -> None:
        # First thing after the ack, before any read: the trigger expires 3 seconds after the press.
        view = await open_form(client, body)
        await fill_form(deps, client, body, view)

    async def search_documents(ack: Any, payload: dict[str, Any]) -> None:
        await ack(**await document_options(deps, str(payload.get("value", ""))))

    async def check_correction(ack: Any, body: dict[str, Any]) -> None:
        await check_submission(deps, ack, body)

    async def store_correction(body: dict[str, Any], client: AsyncWebClient) -> None:
        await store_submission(deps, client, body)

    def decision(verdict: Any) -> Listener:
        async def decide_later(body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
            await on_decision(deps, client, body, respond, verdict)

        decide_later.__name__ = f"decide_{verdict}"
        return decide_later

    async def edit_form(body: dict[str, Any], client: AsyncWebClient) -> None:
        view = await open_edit(client, body)
        await fill_edit(deps, client, body, view)

    async def check_edit_form(ack: Any, body: dict[str, Any]) -> None:
        await check_edit(deps, ack, body)

    async def store_edit_form(body: dict[str, Any], client: AsyncWebClient) -> None:
        await store_edit(deps, client, body)

    async def rollback_later(body: dict[str, Any], client: AsyncWebClient) -> None:
        await on_rollback(deps, client, body)

    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish_home(deps, client, event["user"])

    async def command_ack(ack: Any, command: dict[str, Any]) -> None:
        await ack_command(ack, command)

    async def command_later(command: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await run_command(deps, client, respond, command)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], response: Any = None) -> None:
        """Failures before the response: Slack delivers events again after a non-2xx. When the
        feedback database is down or too slow the answer is 503 (try again later), logged as a
        warning; anything else is a 500 with its traceback."""
        kind = body.get("type") or "request"
        if isinstance(error, (Deadline, DatabaseUnavailable)) or is_database_failure(error):
            if response is not None:
                response.status = 503
            log.warning("Slack %s %s not processed, the database is unavailable (%s); Slack will retry",
                        kind, body.get("event_id") or "", error.__class__.__name__)
            return
        log.error("Slack %s %s failed: %s: %s", kind, body.get("event_id") or "", error.__class__.__name__, error,
                  exc_info=error)

    app.event("app_mention", matchers=[person])(ack=acknowledge, lazy=[answer_mention])
    app.event("message", matchers=[person])(ack=acknowledge, lazy=[answer_message])
    # after a 👎, "Ask an expert" (only with an expert group: no extra work per reaction otherwise)
    app.event("reaction_added")(ack=reaction(True), lazy=[offer_expert] if settings.expert_group else [])
    app.event("reaction_removed")(reaction(False))
    app.event("app_home_opened")(ack=acknowledge, lazy=[home_opened])
    for action_id in (kit.VOTE_UP, kit.VOTE_DOWN, kit.FEEDBACK_BUTTONS):
        app.action(action_id)(ack=acknowledge, lazy=[vote_later])
    app.action(kit.SUGGEST)(ack=acknowledge, lazy=[correction_form])
    app.action(talk.ASK_EXPERT)(ack=acknowledge, lazy=[ask_expert])
    app.action(talk.SUGGEST_REPLY)(ack=acknowledge, lazy=[suggest_reply])
    app.action(talk.DISMISS_OFFER)(ack=acknowledge, lazy=[dismiss_offer])
    app.options(kit.SEARCH_INPUT)(search_documents)
    app.view(kit.CORRECTION_MODAL)(ack=check_correction, lazy=[store_correction])
    app.action(kit.REVIEW_APPROVE)(ack=acknowledge, lazy=[decision("approve")])
    app.action(kit.REVIEW_REJECT)(ack=acknowledge, lazy=[decision("reject")])
    app.action(kit.REVIEW_OVERRIDE)(ack=acknowledge, lazy=[decision("override")])
    app.action(kit.REVIEW_APPLY)(ack=acknowledge, lazy=[decision("apply")])
    app.action(kit.REVIEW_EDIT)(ack=acknowledge, lazy=[edit_form])
    app.view(kit.EDIT_MODAL)(ack=check_edit_form, lazy=[store_edit_form])
    app.action(kit.ROLLBACK)(ack=acknowledge, lazy=[rollback_later])
    app.command("/askloop")(ack=command_ack, lazy=[command_later])
    return app
