"""`askloop shell`: chat with the bot in a terminal before connecting it to Slack.

Reads one message per line, from a person at a prompt or from a pipe (then no prompt is shown
and the shell exits at end of input), so scripts and tests drive it the same way people do.
Commands are looked up by their first word: the shell's own are registered with `command`, and
each shell gets its own copy of them plus whatever its caller adds (`Shell.commands`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape

from bot.services import local_user
from retrieval.answer import Answer

if TYPE_CHECKING:
    from feedback.loop import Answered, FeedbackLoop

Handler = Callable[["Shell", str], None]
COMMANDS: dict[str, tuple[Handler, str]] = {}


def command(name: str, help_text: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = (handler, help_text)
        return handler

    return register


class Shell:
    def __init__(
        self,
        loop: "FeedbackLoop",
        user: str | None = None,
        console: Console | None = None,
        ask: "Callable[[str], Answered] | None" = None,
        show: Callable[[Answer], None] | None = None,
        errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.loop = loop
        self.commands: dict[str, tuple[Handler, str]] = dict(COMMANDS)
        self.user = user or local_user()
        self.console = console or Console(highlight=False)
        self._ask = ask
        self._show = show
        self._errors = errors
        self.last_answer: Answer | None = None
        self.last_answer_id: int | None = None
        self.failures = 0

    def say(self, text: str) -> None:
        self.console.print(text)

    def error(self, text: str) -> None:
        self.failures += 1
        self.console.print(f"[red]error:[/] {escape(text)}")

    def handle(self, line: str) -> bool:
        """Process one line; False means the user asked to leave."""
        text = line.strip()
        if not text:
            return True
        if text in {"/quit", "/exit", "quit", "exit"}:
            return False
        word, _, rest = text.partition(" ")
        if word.endswith(":") and word[:-1] in self.commands:  # "correct: TEXT"
            word, rest = word[:-1], rest
        try:
            if word in self.commands:
                self.commands[word][0](self, rest.strip())
            else:
                self.ask(text)
        except self._errors as exc:
            self.error(str(exc) or exc.__class__.__name__)
        return True

    def ask(self, question: str) -> None:
        assert self._ask is not None
        answered = self._ask(question)
        self.last_answer = answered.answer
        self.last_answer_id = answered.answer_id
        if self._show:
            self._show(answered.answer)

    def run(self, stream: TextIO | None = None, interactive: bool | None = None) -> int:
        """Read lines until the input ends or the user quits. The exit status is 1 when a piped
        session had failed lines (a script must notice), 0 otherwise: at a terminal the person
        has already seen each error."""
        stream = stream or sys.stdin
        interactive = stream.isatty() if interactive is None else interactive
        if interactive:
            self.say(f"askloop shell — you are [bold]{escape(self.user)}[/]. Type a question, /help, or /quit.")
        lines: Iterable[str] = iter(lambda: self._read(stream, interactive), None)
        for line in lines:
            if not self.handle(line):
                break
        return 1 if self.failures and not interactive else 0

    def _read(self, stream: TextIO, interactive: bool) -> str | None:
        if interactive:
            try:
                return self.console.input("[bold cyan]you>[/] ")
            except EOFError:
                return None
        line = stream.readline()
        return line if line else None


@command("/help", "list the commands")
def _help(shell: Shell, _: str) -> None:
    shell.say("Type a question to get an answer. Commands:")
    for name, (_, text) in sorted(shell.commands.items()):
        shell.say(f"  {escape(name)} — {escape(text)}")
    shell.say("  /quit — leave")
