"""The `askloop` command: every sub-command module registers itself on the shared app."""

from __future__ import annotations

from bot.cli_app import app
from bot.commands import knowledge  # noqa: F401  (registers its commands)
from bot.commands import feedback  # noqa: F401
from bot.commands import serve  # noqa: F401
from bot.commands import ops  # noqa: F401
from bot.commands import evaluation  # noqa: F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
