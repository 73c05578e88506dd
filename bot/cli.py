"""The `askloop` command: every sub-command module registers itself on the shared app."""

from __future__ import annotations

from bot.cli_app import app, exit_quickly
from bot.commands import knowledge  # noqa: F401  (registers its commands)
from bot.commands import feedback  # noqa: F401
from bot.commands import serve  # noqa: F401
from bot.commands import ops  # noqa: F401
from bot.commands import evaluation  # noqa: F401


def main() -> None:
    try:
        app()
    except SystemExit as done:
        if done.code in (0, None):
            exit_quickly()
        raise


if __name__ == "__main__":
    main()
