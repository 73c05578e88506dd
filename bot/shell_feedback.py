"""Feedback commands for `askloop shell`: vote and correct the last answer, and moderate.

`+1` / `-1` [reason] and `correct: TEXT [--source DOCUMENT]` act on the last answer as the shell's
user; `/review`, `/show ID`, `/approve ID [--override] [note]`, `/apply ID`, `/reject ID`,
`/rollback N`, `/versions` and `/stats` mirror the `askloop` commands of the same names, through
the same `FeedbackLoop` use cases, with the same rules and the same screens (`bot.screens`).

Who may moderate: on your own database (no ASKLOOP_DATABASE_URL) the person at the terminal —
the OS user, which is the shell's user unless `--user` says otherwise — moderates in their own
shell; on a shared database only the users listed in ASKLOOP_MODERATORS do.
"""

from __future__ import annotations

import re

from rich.markup import escape

from bot.screens import explain_refusal
from bot.shell import Handler, Shell
from feedback.errors import FeedbackError, InvalidFeedback

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
    return explain_refusal(exc, approve_anyway="/approve {ref} --override", own_user="start the shell without --user")


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
    """`better text --source handbook/vpn.md` → ("better text", "handbook/vpn.md"): everything after
    `--source` names the document (a path, URL, title or id); without it a doc:ID or URL word is
    the source."""
    if "--source" in rest.split():
        text, _, source = rest.partition("--source")
        return (text.strip() or None), (source.strip() or None)
    words = rest.split()
    sources = [w for w in words if _SOURCE.match(w)]
    text = " ".join(w for w in words if not _SOURCE.match(w)).strip()
    return (text or None), (sources[0] if sources else None)


@command("correct", "correct: TEXT [--source DOCUMENT] — suggest a better answer and/or the document "
                    "(path, URL, title or id) that answers the last question")
def _correct(shell: Shell, rest: str) -> None:
    text, source = split_correction(rest)
    record = shell.loop.suggest_correction(_last(shell), shell.user, text=text, source=source, origin="shell")
    shell.say(f"thanks — correction c{record.id} is waiting for a moderator")


@command("/review", "list pending corrections and proposals ([page])")
def _review(shell: Shell, rest: str) -> None:
    from bot.screens import review_list

    page = int(rest) if rest.strip().isdigit() else 1
    result = shell.loop.review_queue(page, 10)
    if not result.total:
        shell.say("nothing to review")
        return
    shell.say(f"waiting for a moderator — page {result.page} of {result.pages}:")
    shell.console.print(review_list(result.items))
    shell.say("[dim]details: /show ID · decide: /approve ID, /reject ID[/]")


@command("/show", "/show c12|p3 — everything about one correction or proposal")
def _show(shell: Shell, rest: str) -> None:
    from bot.screens import correction_detail, proposal_detail
    from feedback.refs import parse_ref

    if not rest.strip():
        raise InvalidFeedback("usage: /show c12|p3")
    target = parse_ref(rest.strip(), "correction", "proposal")
    if target.kind == "correction":
        record = shell.loop.correction(target.id)
        shell.console.print(correction_detail(record, shell.loop.get_answer(record.answer_id)))
    else:
        shell.console.print(proposal_detail(shell.loop.proposal(target.id)))


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
    from bot.screens import version_list

    rows = shell.loop.versions()
    if not rows:
        shell.say("no tuning versions yet: answers come from the base index")
        return
    shell.console.print(version_list(rows))


@command("/stats", "answers, satisfaction, knowledge gaps and pending work")
def _stats(shell: Shell, _: str) -> None:
    from bot.screens import gap_lines

    numbers = shell.loop.stats()
    for w in numbers.windows:
        sat = "—" if w.satisfaction is None else f"{w.satisfaction:.0%}"
        shell.say(f"  {w.window}: {w.answers} answer(s), {w.up} 👍 / {w.down} 👎, satisfaction {sat}")
    shell.say(f"  pending: {numbers.pending_corrections} correction(s), {numbers.open_proposals} proposal(s)")
    shell.console.print(gap_lines(shell.loop.knowledge_gaps()))
