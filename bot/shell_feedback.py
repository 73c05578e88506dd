"""Feedback commands for `askloop shell`: vote and correct the last answer, and moderate.

`+1` / `-1` [reason] and `correct: TEXT [SOURCE]` act on the last answer as the shell's user;
`/review`, `/approve ID [--override] [note]`, `/apply ID`, `/reject ID`, `/rollback N`,
`/versions` and `/stats` mirror the `askloop` commands of the same names, through the same
`FeedbackLoop` use cases, with the same rules.
"""

from __future__ import annotations

import re

from rich.markup import escape

from bot.shell import Handler, Shell
from feedback.errors import FeedbackError, InvalidFeedback, NeedsOverride, PermissionDenied
from feedback.refs import proposal_ref

_SOURCE = re.compile(r"^(doc:\S+|https?://\S+)$")
COMMANDS: dict[str, tuple[Handler, str]] = {}


def command(name: str, help_text: str):  # type: ignore[no-untyped-def]
    def add(handler: Handler) -> Handler:
        COMMANDS[name] = (handler, help_text)
        return handler

    return add


def register(shell: Shell) -> None:
    """Give `shell` the feedback commands."""
    shell.commands.update(COMMANDS)


def explain(exc: FeedbackError) -> str:
    """The loop's refusal, plus what to type in the shell to get past it."""
    if isinstance(exc, NeedsOverride):
        return f"{exc} — to approve it anyway: /approve {proposal_ref(exc.proposal_id)} --override"
    if isinstance(exc, PermissionDenied):
        return (f"{exc}. On a shared database moderators are listed in ASKLOOP_MODERATORS; on your own "
                "database you moderate as your OS user (start the shell without --user)")
    return str(exc)


def _last(shell: Shell) -> int:
    if shell.last_answer_id is None:
        raise InvalidFeedback("there is no answer to give feedback on yet: ask a question first")
    return int(shell.last_answer_id)


def _vote(shell: Shell, value: int, reason: str) -> None:
    outcome = shell.loop.vote(_last(shell), shell.user, value, source="shell", reason=reason or None)
    counted = f"counts with weight {outcome.weight:g}" if outcome.counted else f"kept, not counted: {outcome.why}"
    shell.say(f"{'👍' if value > 0 else '👎'} {'changed' if outcome.replaced else 'thanks'} — {escape(counted)}")


@command("+1", "👍 the last answer (optionally followed by a reason)")
def _up(shell: Shell, rest: str) -> None:
    _vote(shell, 1, rest)


@command("-1", "👎 the last answer (optionally followed by a reason)")
def _down(shell: Shell, rest: str) -> None:
    _vote(shell, -1, rest)


def split_correction(rest: str) -> tuple[str | None, str | None]:
    """`better text doc:ID` → ("better text", "doc:ID"): a doc:ID or URL word is the source."""
    words = rest.split()
    sources = [w for w in words if _SOURCE.match(w)]
    text = " ".join(w for w in words if not _SOURCE.match(w)).strip()
    return (text or None), (sources[0] if sources else None)


@command("correct", "correct: TEXT [doc:ID|URL] — suggest a better answer and/or source for the last answer")
def _correct(shell: Shell, rest: str) -> None:
    text, source = split_correction(rest)
    record = shell.loop.suggest_correction(_last(shell), shell.user, text=text, source=source, origin="shell")
    shell.say(f"thanks — correction c{record.id} is waiting for a moderator")


@command("/review", "moderators: list pending corrections and proposals ([page])")
def _review(shell: Shell, rest: str) -> None:
    page = int(rest) if rest.strip().isdigit() else 1
    result = shell.loop.review_queue(page, 10)
    if not result.total:
        shell.say("nothing to review")
        return
    shell.say(f"pending review — page {result.page} of {result.pages}:")
    for item in result.items:
        shell.say(f"  {item.ref} [{item.status}] {escape(item.summary)} [dim]({escape(item.created_by)})[/]")


def _decide(shell: Shell, rest: str, approve: bool) -> None:
    words = rest.split()
    override = "--override" in words
    words = [w for w in words if w != "--override"]
    if not words:
        raise InvalidFeedback(f"usage: /{'approve' if approve else 'reject'} c12|p3 [note]")
    note = " ".join(words[1:]) or None
    try:
        decision = shell.loop.decide(words[0], shell.user, approve, note=note, override=override)
    except FeedbackError as exc:
        raise InvalidFeedback(explain(exc)) from None
    shell.say(escape(decision.message()))


@command("/approve", "moderators: /approve c12|p3 [--override] [note] (a proposal is applied at once)")
def _approve(shell: Shell, rest: str) -> None:
    _decide(shell, rest, True)


@command("/reject", "moderators: /reject c12|p3 [note]")
def _reject(shell: Shell, rest: str) -> None:
    _decide(shell, rest, False)


@command("/apply", "moderators: /apply p3 — make an approved proposal the live version")
def _apply(shell: Shell, rest: str) -> None:
    try:
        decision = shell.loop.apply(rest.strip(), shell.user)
    except FeedbackError as exc:
        raise InvalidFeedback(explain(exc)) from None
    shell.say(escape(decision.message()))


@command("/rollback", "moderators: /rollback N — make version N active again (0 = base index)")
def _rollback(shell: Shell, rest: str) -> None:
    if not rest.strip().isdigit():
        raise InvalidFeedback("usage: /rollback N (a version number from /versions)")
    try:
        record = shell.loop.rollback(int(rest), shell.user)
    except FeedbackError as exc:
        raise InvalidFeedback(explain(exc)) from None
    shell.say(f"version {record.number} is active again" if record else "the base index is active again")


@command("/versions", "list tuning versions")
def _versions(shell: Shell, _: str) -> None:
    rows = shell.loop.versions()
    if not rows:
        shell.say("no tuning versions yet")
    for v in rows:
        shell.say(f"  {'▶' if v.active else ' '} {v.number} by {escape(v.created_by)} — {escape(v.note or '')}")


@command("/stats", "answers, satisfaction and pending work")
def _stats(shell: Shell, _: str) -> None:
    numbers = shell.loop.stats()
    for w in numbers.windows:
        sat = "—" if w.satisfaction is None else f"{w.satisfaction:.0%}"
        shell.say(f"  {w.window}: {w.answers} answer(s), {w.up} 👍 / {w.down} 👎, satisfaction {sat}")
    shell.say(f"  pending: {numbers.pending_corrections} correction(s), {numbers.open_proposals} proposal(s)")
