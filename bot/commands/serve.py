"""`askloop serve`: run the Slack bot (Socket Mode with an app token, else HTTP)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli_app import app, err_console, fail, get_settings
from feedback.errors import FeedbackError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("askloop.slack")


def choose_transport(settings: "Settings", http: bool) -> str:
    """'socket' when an app token is set and HTTP was not asked for, else 'http'."""
    if http or not settings.slack_app_token:
        return "http"
    return "socket"


def prepare(settings: "Settings") -> Any:
    """Check settings and schema, warm the model, build the bolt app (shared by both modes)."""
    from bot.slack.app import build_app, make_deps

    if not settings.slack_bot_token:
        fail("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…): see docs/slack.md")
    try:
        from bot.observability import MetricEvents

        deps = make_deps(settings, events=MetricEvents())  # opening the loop checks the database's schema
    except FeedbackError as exc:
        from bot.cli_app import explain

        fail(explain(exc))
    try:  # load the embedding model now, not on the first question
        deps.services.embedder.encode_one("warm up")
    except Exception as exc:
        log.warning("could not load the embedding model yet: %s", exc)
    try:  # built here, in this thread, so what wraps it later (retrieval metrics) wraps this one
        knowledge_base = deps.services.knowledge_base
    except Exception as exc:  # e.g. Chroma not up yet: the first question builds it instead
        log.warning("could not open the knowledge base yet: %s", exc)
    else:
        threading.Thread(target=_prepare_keywords, args=(knowledge_base,), name="askloop-keywords", daemon=True).start()
    return deps, build_app


def _prepare_keywords(knowledge_base: Any) -> None:
    try:
        knowledge_base.prepare_keywords()
    except Exception as exc:  # e.g. Chroma not up yet: the first question builds it instead
        log.warning("could not build the keyword index yet: %s", exc)


def socket_handler(bolt_app: Any, app_token: str) -> Any:
    """The Socket Mode handler (a websocket to Slack; no public URL needed)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    return AsyncSocketModeHandler(bolt_app, app_token)


async def run_socket_mode(deps: Any, bolt_app: Any, app_token: str) -> None:
    from bot.slack.review import watch_review_queue

    handler = socket_handler(bolt_app, app_token)
    watcher = None
    if deps.settings.review_channel and deps.settings.slack_review_poll > 0:
        watcher = asyncio.create_task(watch_review_queue(deps, bolt_app.client))
    try:
        await handler.start_async()
    finally:
        if watcher:
            watcher.cancel()
        try:
            await handler.close_async()
        except Exception:  # closing is best effort on the way out
            pass


@app.command()
def serve(
    http: Annotated[bool, typer.Option("--http", help="Serve Slack's HTTP endpoint instead of Socket Mode.")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on (HTTP mode).")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to listen on (HTTP mode).")] = 3000,
) -> None:
    """Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP (/slack/events)."""
    settings = get_settings()
    try:
        from bot.observability import configure_from_settings, uvicorn_log_config

        configure_from_settings(settings)
        log_config: Any = uvicorn_log_config(settings.log_format, settings.log_level)
    except ImportError:  # pragma: no cover
        logging.basicConfig(level=logging.INFO)
        log_config = None
    if not settings.slack_bot_token:
        fail("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…): see docs/slack.md")
    transport = choose_transport(settings, http)
    if transport == "http" and not settings.slack_signing_secret:
        fail("SLACK_SIGNING_SECRET is not set: HTTP mode verifies every request with it")
    deps, build_app = prepare(settings)
    bolt_app = build_app(deps)
    if transport == "socket":
        err_console.print("askloop: connecting to Slack in Socket Mode")
        try:
            asyncio.run(run_socket_mode(deps, bolt_app, settings.slack_app_token or ""))
        except KeyboardInterrupt:
            err_console.print("askloop: stopped")
        return
    import uvicorn

    from bot.slack.server import asgi_app

    err_console.print(f"askloop: serving Slack events on http://{host}:{port}/slack/events")
    uvicorn.run(asgi_app(bolt_app, deps), host=host, port=port, log_config=log_config,
                access_log=False, lifespan="on")
