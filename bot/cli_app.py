"""The Typer application object and the helpers every command module shares."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from bot.services import Services, local_user
from bot.settings import Settings, load_settings

app = typer.Typer(
    name="askloop",
    help="Answer questions from your team's knowledge base, and learn from its feedback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Errors a person can act on: printed as one line, never as a traceback.
EXPECTED_ERRORS: list[type[BaseException]] = []


def expected(*kinds: type[BaseException]) -> None:
    """Register exception types whose message is shown as-is (one line) instead of a traceback."""
    EXPECTED_ERRORS.extend(kinds)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except tuple(EXPECTED_ERRORS) as exc:  # type: ignore[misc]
        fail(explain(exc))


def explain(exc: BaseException) -> str:
    """An expected error's message, with what to type at this terminal to get past it."""
    from feedback.errors import OutdatedSchema

    message = str(exc) or exc.__class__.__name__
    if isinstance(exc, OutdatedSchema) and exc.upgradable:
        return f"{message}: run `askloop db upgrade`"
    return message


def get_settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:  # a bad environment variable or .env line
        problems = "; ".join(
            f"{_setting_name(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        fail(f"invalid settings: {problems}")


def _setting_name(loc: tuple[object, ...]) -> str:
    """The environment variable a person sets, not pydantic's field name."""
    field = str(loc[0]) if loc else "?"
    if field.startswith("SLACK_") or field.startswith("ASKLOOP_"):
        return field
    return f"ASKLOOP_{field.upper()}"


def get_services() -> Services:
    """The wiring for a command run by the person at this terminal: on their own embedded
    database they are a moderator too (a shared database keeps its ASKLOOP_MODERATORS list)."""
    settings = get_settings()
    return Services(settings, local_owner=None if settings.database_url else local_user())


def is_interactive() -> bool:
    return sys.stdin.isatty()
