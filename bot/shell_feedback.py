"""Feedback commands for `askloop shell`: vote and correct the last answer, and moderate.

`+1` / `-1` [reason] and `correct: TEXT` (with `doc:ID` or a URL as the better source) act on the
last answer as the shell's user; `/review`, `/approve ID`, `/reject ID`, `/rollback N`,
`/versions` and `/stats` mirror the `askloop` commands of the same names.
"""

from __future__ import annotations

import re

from rich.markup import escape

from bot.shell import Shell, command
from feedback.errors import InvalidFeedback

_SOURCE = re.compile(r"^(doc:\S+|https?://\S+)$")


def _last(shell: Shell) -> int:
    if shell.last_answer_id is None:
        raise InvalidFeedback("there is no answer to give feedback on yet: ask a question first")
    return int(shell.last_answer_id)


def _vote(shell: Shell, value: int, reason: str) -> None:
    outcome = shell.services.feedback.vote(  # type: ignore[attr-defined]
        _last(shell), shell.user, value, source="shell", reason=reason or None
    )
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
    record = shell.services.feedback.suggest_correction(  # type: ignore[attr-defined]
        _last(shell), shell.user, text=text, source_ref=source
    )
    shell.say(f"thanks — correction c{record.id} is waiting for a moderator")


@command("/review", "moderators: list pending corrections and proposals ([page])")
def _review(shell: Shell, rest: str) -> None:
    page = int(rest) if rest.strip().isdigit() else 1
    result = shell.services.feedback.pending_review(page, 10)  # type: ignore[attr-defined]
    if not result.total:
        shell.say("nothing to review")
        return
    shell.say(f"pending review — page {result.page} of {result.pages}:")
    for item in result.items:
        shell.say(f"  {item.ref} [{item.status}] {escape(item.summary)} [dim]({escape(item.created_by)})[/]")


def _decide(shell: Shell, rest: str, approve: bool) -> None:
    from bot.commands.feedback import parse_ref

    ref, _, note = rest.strip().partition(" ")
    kind, number = parse_ref(ref)
    store = shell.services.feedback  # type: ignore[attr-defined]
    note_or_none = note.strip() or None
    if kind == "correction":
        if approve:
            store.approve_correction(number, shell.user, note=note_or_none)
        else:
            store.reject_correction(number, shell.user, note=note_or_none)
        shell.say(f"c{number} {'approved' if approve else 'rejected'}")
        return
    if not approve:
        store.reject_proposal(number, shell.user, note=note_or_none)
        shell.say(f"p{number} rejected")
        return
    store.approve_proposal(number, shell.user, note=note_or_none)
    version = store.apply_proposal(number, shell.user)
    shell.say(f"p{number} approved; version {version.number} is now active")


@command("/approve", "moderators: /approve c12|p3 [note] (a proposal is applied at once)")
def _approve(shell: Shell, rest: str) -> None:
    _decide(shell, rest, True)


@command("/reject", "moderators: /reject c12|p3 [note]")
def _reject(shell: Shell, rest: str) -> None:
    _decide(shell, rest, False)


@command("/rollback", "moderators: /rollback N — make version N active again (0 = base index)")
def _rollback(shell: Shell, rest: str) -> None:
    if not rest.strip().isdigit():
        raise InvalidFeedback("usage: /rollback N (a version number from /versions)")
    record = shell.services.feedback.rollback(int(rest), shell.user)  # type: ignore[attr-defined]
    shell.say(f"version {record.number} is active again" if record else "the base index is active again")


@command("/versions", "list tuning versions")
def _versions(shell: Shell, _: str) -> None:
    rows = shell.services.feedback.versions()  # type: ignore[attr-defined]
    if not rows:
        shell.say("no tuning versions yet")
    for v in rows:
        shell.say(f"  {'▶' if v.active else ' '} {v.number} by {escape(v.created_by)} — {escape(v.note or '')}")


@command("/stats", "answers, satisfaction and pending work")
def _stats(shell: Shell, _: str) -> None:
    numbers = shell.services.feedback.stats()  # type: ignore[attr-defined]
    for w in numbers.windows:
        sat = "—" if w.satisfaction is None else f"{w.satisfaction:.0%}"
        shell.say(f"  {w.window}: {w.answers} answer(s), {w.up} 👍 / {w.down} 👎, satisfaction {sat}")
    shell.say(f"  pending: {numbers.pending_corrections} correction(s), {numbers.open_proposals} proposal(s)")
