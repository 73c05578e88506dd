"""The Typer application object and the helpers every command module shares.

Importing this (and so `askloop --help`) must stay cheap: settings, the wiring and everything
below them are imported by the functions that need them, and the error types a command turns
into one line are registered by name (`expected("retrieval.search:QuestionError")`), so that
registering them imports nothing. `tests/bot/test_startup.py` keeps it so.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    from bot.services import Services
    from bot.settings import Settings


def _value_label(param: Any, ctx: Any) -> str | None:
    """`--note TEXT`, `--page N`: a short placeholder for what an option takes."""
    shown = (param.display_type(ctx) or "").strip("<>")
    kind = shown.split()[0] if shown else ""
    return {"int": "N", "float": "NUMBER", "path": "PATH", "str": "TEXT"}.get(kind, kind.upper() or None)


def _quiet_types(command: Any) -> None:
    """Help without a type tag on every option (`<bool>`, `<str>`): a flag shows nothing, an
    option its placeholder, an argument its name. Set on the command objects this app builds."""
    if getattr(command, "_askloop_quiet", False):
        return
    command._askloop_quiet = True
    for param in command.params:
        if param.param_type_name == "argument":
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx: None
        elif getattr(param, "is_flag", False):
            param.display_type_rich = lambda ctx: None
        else:
            param.display_type_rich = lambda ctx, param=param: _value_label(param, ctx)
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.display_type_rich = lambda ctx: None
        return option

    command.get_help_option = get_help_option


class CommandGroup(TyperGroup):
    """askloop's command groups: help without type noise."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _quiet_types(command)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _quiet_types(self)
        super().format_help(ctx, formatter)


def group(help_text: str, **options: Any) -> typer.Typer:
    """A sub-command group (`askloop review …`) with the same help style as the app."""
    return typer.Typer(cls=CommandGroup, help=help_text, add_completion=False, **options)


app = typer.Typer(
    name="askloop",
    cls=CommandGroup,
    help="Answer questions from your team's knowledge base, and learn from its feedback.\n\n"
         "Start with `askloop ingest FOLDER`, then `askloop ask \"QUESTION\"` or `askloop shell`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Errors a person can act on: printed as one line, never as a traceback. Types, or "module:Name"
# strings resolved only when that module has been imported (if it has not, nothing in it raised).
EXPECTED_ERRORS: list[type[BaseException] | str] = []


def expected(*kinds: type[BaseException] | str) -> None:
    """Register exception types whose message is shown as-is (one line) instead of a traceback."""
    EXPECTED_ERRORS.extend(k for k in kinds if k not in EXPECTED_ERRORS)


def expected_errors() -> tuple[type[BaseException], ...]:
    """The registered types that can have been raised so far (their modules are loaded)."""
    found: list[type[BaseException]] = []
    for kind in EXPECTED_ERRORS:
        if isinstance(kind, str):
            module, _, name = kind.partition(":")
            if module not in sys.modules:
                continue
            kind = getattr(importlib.import_module(module), name)
        found.append(kind)  # type: ignore[arg-type]
    return tuple(found)


# What every command may turn into one line, wherever it comes from.
expected(
    "feedback.errors:FeedbackError", "retrieval.search:QuestionError", "retrieval.search:EmptyKnowledgeBase",
    "retrieval.store:StoreUnavailable", "retrieval.embeddings:EmbeddingModelError", "retrieval.answer:ChatModelError",
)


def fail(message: str, code: int = 1) -> NoReturn:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        if isinstance(exc, expected_errors()):
            fail(explain(exc))
        raise


def explain(exc: BaseException) -> str:
    """An expected error's message, with what to type at this terminal to get past it."""
    from feedback.errors import OutdatedSchema

    message = str(exc) or exc.__class__.__name__
    if isinstance(exc, OutdatedSchema) and exc.upgradable:
        return f"{message}: run `askloop db upgrade`"
    return message


def get_settings() -> "Settings":
    from pydantic import ValidationError

    from bot.settings import load_settings

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


def get_services() -> "Services":
    """The wiring for a command run by the person at this terminal: on their own embedded
    database they are a moderator too (a shared database keeps its ASKLOOP_MODERATORS list)."""
    from bot.services import Services, local_user

    settings = get_settings()
    return Services(settings, local_owner=None if settings.database_url else local_user())


_DONE: list["Services"] = []


def finish_now(services: "Services") -> None:
    """Say that this one-shot command's work is committed, so the `askloop` process may end
    without the interpreter's teardown (see `exit_quickly`)."""
    _DONE.append(services)


def exit_quickly() -> NoReturn | None:
    """End the process at once when a command said it may (`finish_now`); else return.

    What remains at exit after an answer is freeing the libraries it loaded (Chroma's native
    client, onnxruntime): 0.5 s of a 2.1 s `askloop ask`. Output and logs are flushed and the
    database connections closed first. Only the `askloop` entry point calls this (commands run
    in-process, as in tests, exit normally); `ASKLOOP_FULL_EXIT=1` turns it off."""
    import logging
    import os

    if not _DONE or os.environ.get("ASKLOOP_FULL_EXIT"):
        return None
    for services in _DONE:
        if "loop" in services.__dict__:
            services.loop.close()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def who(user: str | None) -> str:
    """The person a command acts as: `--user`, else the OS user."""
    from bot.services import local_user

    return (user or "").strip() or local_user()


def is_interactive() -> bool:
    return sys.stdin.isatty()
