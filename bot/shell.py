"""`askloop shell`: chat with the bot in a terminal before connecting it to Slack.

Reads one message per line, from a person at a prompt or from a pipe (then no prompt is shown
and the shell exits at end of input), so scripts and tests drive it the same way people do.

At a terminal the prompt is prompt_toolkit's: line editing, Up/Down through the history (kept in
`ASKLOOP_HOME/shell-history`), Ctrl-C clears the line, Ctrl-D leaves. Ctrl-C while an answer is
being looked up (the first one loads the model, with a spinner) stops the wait and the session
goes on. A piped line that is not UTF-8 is one error, and the next line is read.

Commands are looked up by their first word: the shell's own are registered with `command`, and
each shell gets its own copy of them plus whatever its caller adds (`Shell.commands`). A line that
looks like a command but is none (`/frobnicate`, `+5`) is refused, never asked
(`bot.command_words`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from rich.console import Console
from rich.markup import escape

from bot.command_words import unknown_command
from bot.progress import interruptible
from bot.services import local_user

if TYPE_CHECKING:
    from feedback.loop import Answered, FeedbackLoop
    from retrieval.answer import Answer

Handler = Callable[["Shell", str], None]
COMMANDS: dict[str, tuple[Handler, str]] = {}
LEAVE = ("/quit", "/exit", "quit", "exit")
PROMPT = "you> "


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
        show: "Callable[[Answer], None] | None" = None,
        errors: tuple[type[BaseException], ...] | Callable[[], tuple[type[BaseException], ...]] = (),
        history: Path | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """`errors`: the exception types shown as one error line (or a callable giving them, for
        types registered lazily); `history`: where the prompt keeps its history; `prepare`: run
        before each question on this thread (it loads the model the first time, with a spinner
        that Ctrl-C stops), while `ask` itself runs on a worker thread."""
        self.loop = loop
        self.commands: dict[str, tuple[Handler, str]] = dict(COMMANDS)
        self.user = user or local_user()
        self.console = console or Console(highlight=False)
        self._ask = ask
        self._show = show
        self._errors = errors
        self._history = history
        self._prepare = prepare
        self.prompt: Callable[[str], str] | None = None  # reads one line at a terminal
        self.last_answer: Answer | None = None
        self.last_answer_id: int | None = None
        self.failures = 0

    def say(self, text: str) -> None:
        self.console.print(text)

    def error(self, text: str) -> None:
        self.failures += 1
        self.console.print(f"[red]error:[/] {escape(text)}")

    def _error_types(self) -> tuple[type[BaseException], ...]:
        return self._errors() if callable(self._errors) else self._errors

    def handle(self, line: str) -> bool:
        """Process one line; False means the user asked to leave."""
        text = line.strip()
        if not text:
            return True
        if text in LEAVE:
            return False
        word, _, rest = text.partition(" ")
        if word.endswith(":") and word[:-1] in self.commands:  # "correct: TEXT"
            word = word[:-1]
        if word not in self.commands:
            refusal = unknown_command(text, [*self.commands, *LEAVE])
            if refusal:
                self.error(f"{refusal} (/help lists the commands)")
                return True
        try:
            if word in self.commands:
                handler = self.commands[word][0]
                interruptible(lambda: handler(self, rest.strip()))
            else:
                self.ask(text)
        except KeyboardInterrupt:
            self.say("[dim]interrupted[/]")
        except Exception as exc:
            if not isinstance(exc, self._error_types()):
                raise
            self.error(str(exc) or exc.__class__.__name__)
        return True

    def ask(self, question: str) -> None:
        assert self._ask is not None
        ask = self._ask
        if self._prepare is not None:
            self._prepare()
        answered = interruptible(lambda: ask(question))
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
            self._greet()
            while True:
                try:
                    line = self._read_typed()
                except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the line, keep the session
                    continue
                except EOFError:  # Ctrl-D
                    break
                if not self.handle(line):
                    break
            return 0
        for line in self._piped_lines(stream):
            if line is None:
                continue
            if not self.handle(line):
                break
        return 1 if self.failures else 0

    def _greet(self) -> None:
        role = ""
        try:
            if self.loop.is_moderator(self.user):
                role = " (a moderator here: /review, /approve, /rollback)"
        except Exception:  # the greeting must never stop the shell
            pass
        self.say(f"askloop shell — you are [bold]{escape(self.user)}[/]{role}. "
                 "Type a question, /help, or /quit. Up/Down: history; Ctrl-C: stop; Ctrl-D: leave.")

    def _read_typed(self) -> str:
        if self.prompt is None:
            if sys.stdin.isatty() and sys.stdout.isatty():
                self.prompt = self.make_prompt(self._history)
            else:  # typed into something that is not a terminal: plain input
                self.prompt = lambda text: self.console.input(f"[bold cyan]{escape(text)}[/]")
        return self.prompt(PROMPT)

    @staticmethod
    def make_prompt(history: Path | None = None, *, input: Any = None, output: Any = None) -> Callable[[str], str]:
        """A prompt_toolkit prompt: line editing, and history kept in `history` (this session's
        only when the file cannot be written). `input`/`output`: prompt_toolkit's, for tests."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        kept: Any = InMemoryHistory()
        if history is not None:
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                history.touch(exist_ok=True)
                kept = FileHistory(str(history))
            except OSError:  # a read-only home: history for this session only
                pass
        session: Any = PromptSession(history=kept, input=input, output=output)
        return lambda text: str(session.prompt(text))

    def _piped_lines(self, stream: TextIO) -> Iterator[str | None]:
        """Lines of a pipe; a line that is not UTF-8 is reported and yields None."""
        raw: BinaryIO | None = getattr(stream, "buffer", None)
        number = 0
        while True:
            number += 1
            if raw is None:
                line = stream.readline()
                if not line:
                    return
                yield line
                continue
            data = raw.readline()
            if not data:
                return
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.error(f"line {number} is not UTF-8 text (byte {exc.start + 1}): ignored")
                yield None


@command("/help", "list the commands")
def _help(shell: Shell, _: str) -> None:
    shell.say("Type a question to get an answer. Commands:")
    for name, (_, text) in sorted(shell.commands.items()):
        shell.say(f"  {escape(name)} — {escape(text)}")
    shell.say("  /quit — leave")
