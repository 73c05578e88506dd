"""`askloop db|review|versions|rollback|flag|unflag|stats|audit|export|vote|unvote|correct`: the
feedback loop from the command line, every use case through `FeedbackLoop`.

Commands that act as a person take `--user` (default: your OS user name); moderator actions by
anyone not in ASKLOOP_MODERATORS are refused with one line (and the refusal is audited).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bot.cli_app import app, console, fail, friendly_errors, get_services, get_settings, group
from bot.cli_app import who as _who
from bot.screens import explain_refusal
from feedback.errors import FeedbackError, InvalidFeedback
from feedback.refs import parse_ref

db_app = group("The feedback database: create or upgrade its schema, check it.", no_args_is_help=True)
review_app = group("Pending corrections (c12) and proposals (p3): list, show, approve, reject, apply.",
                   invoke_without_command=True)
app.add_typer(db_app, name="db")
app.add_typer(review_app, name="review")

UserOption = Annotated[str, typer.Option("--user", "-u", help="Who you are (default: your OS user name).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note kept with the decision and in the audit log.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of the screen for people.")]
_SPAN = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _loop() -> Any:
    return get_services().loop


def explain(exc: FeedbackError) -> str:
    """The store's message, plus what to type here to get past it."""
    return explain_refusal(exc, approve_anyway="askloop review approve {ref} --override", own_user="leave out --user")


def decided(work: Any) -> Any:
    """Run a decision, printing refusals with this interface's hint."""
    try:
        return work()
    except FeedbackError as exc:
        fail(explain(exc))


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`2026-11-01` (or any ISO date/time, UTC if no zone) or a span back from now: `7d`, `24h`, `30m`."""
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    span = _SPAN.match(text.strip().lower())
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidFeedback(f"--since {text!r}: give a date like 2026-11-01 or a span like 7d, 24h") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def parse_vote(text: str) -> int:
    value = {"+1": 1, "1": 1, "up": 1, "👍": 1, "+": 1, "-1": -1, "down": -1, "👎": -1, "-": -1}.get(text.strip().lower())
    if value is None:
        raise InvalidFeedback(f"{text!r} is not a vote: use +1 / up or -1 / down")
    return value


# -- db -----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the feedback schema, or bring it up to date (safe to run again)."""
    from feedback.store import FeedbackStore

    settings = get_settings()
    with friendly_errors():
        store = FeedbackStore(settings.effective_database_url)
        where = store.engine.url.render_as_string(hide_password=True)
        try:
            before, after = store.upgrade()
        except Exception as exc:  # unreachable server, wrong credentials: say where
            fail(f"could not upgrade {where}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    if before == after:
        console.print(f"feedback database {escape(where)} is up to date (revision {after})")
    else:
        console.print(f"feedback database {escape(where)} upgraded: {before or 'empty'} → {after}")


@db_app.command("check")
def db_check() -> None:
    """Exit 0 when the schema is current, 1 with a message when it needs `askloop db upgrade`."""
    from feedback.store import FeedbackStore

    settings = get_settings()
    with friendly_errors():
        revision = FeedbackStore(settings.effective_database_url).check_schema()
    console.print(f"feedback database schema is current (revision {revision})")


# -- review ---------------------------------------------------------------------------------


@review_app.callback()
def review(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1, help="Which page.")] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=200, help="Items per page.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List what waits for a moderator: pending corrections and open proposals, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.screens import review_list

    with friendly_errors():
        result = _loop().review_queue(page, per_page)
    if as_json:
        print(json.dumps(result.as_dict() | {"pages": result.pages}, ensure_ascii=False))
        return
    if not result.total:
        console.print("nothing to review")
        return
    pages = f" — page {result.page} of {result.pages}" if result.pages > 1 else ""
    console.print(f"[bold]Waiting for a moderator: {result.total} item(s){pages}[/]")
    console.print(review_list(result.items))
    if result.page < result.pages:
        more = f" --per-page {per_page}" if per_page != 20 else ""
        console.print(f"[dim]next page: askloop review --page {result.page + 1}{more}[/]")
    console.print("[dim]details: askloop review show ID · decide: askloop review approve ID | askloop review reject ID[/]")


@review_app.command("show")
def review_show(ref: Annotated[str, typer.Argument(metavar="ID", help="c12 or p3")], as_json: JsonOption = False) -> None:
    """Everything about one correction or proposal."""
    from bot.screens import correction_detail, proposal_detail

    with friendly_errors():
        target = parse_ref(ref, "correction", "proposal")
        loop = _loop()
        record = loop.correction(target.id) if target.kind == "correction" else loop.proposal(target.id)
        answer = loop.get_answer(record.answer_id) if target.kind == "correction" else None
    if as_json:
        print(json.dumps(record.as_dict(), ensure_ascii=False))
        return
    console.print(correction_detail(record, answer) if target.kind == "correction" else proposal_detail(record))


@review_app.command("approve")
def review_approve(
    ref: Annotated[str, typer.Argument(metavar="ID", help="c12 (a correction) or p3 (a proposal)")],
    note: NoteOption = None,
    text: Annotated[str | None, typer.Option("--text", help="Corrections: approve this text instead (edit, then approve).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Corrections: approve this source instead.")] = None,
    override: Annotated[bool, typer.Option("--override", help="Proposals: approve although it failed its evaluation (audited).")] = False,
    apply: Annotated[bool, typer.Option("--apply/--no-apply", help="Proposals: make it the active version right away.")] = True,
    user: UserOption = "",
) -> None:
    """Approve a correction (optionally edited) or a proposal (and, by default, apply it)."""
    who = _who(user)
    with friendly_errors():
        target = parse_ref(ref, "correction", "proposal")
        loop = _loop()
        decision = decided(lambda: loop.decide(target, who, True, note=note, text=text, source=source,
                                               override=override, apply=apply))
    console.print(escape(decision.message()))


@review_app.command("apply")
def review_apply(ref: Annotated[str, typer.Argument(metavar="ID", help="p3")], user: UserOption = "") -> None:
    """Make an approved proposal the active version (a new, immutable version)."""
    with friendly_errors():
        loop = _loop()
        decision = decided(lambda: loop.apply(ref, _who(user)))
    console.print(escape(decision.message()))


@review_app.command("reject")
def review_reject(
    ref: Annotated[str, typer.Argument(metavar="ID", help="c12 or p3")], note: NoteOption = None, user: UserOption = ""
) -> None:
    """Reject a correction or a proposal."""
    with friendly_errors():
        loop = _loop()
        decision = decided(lambda: loop.decide(ref, _who(user), False, note=note))
    console.print(escape(decision.message()))


# -- versions -------------------------------------------------------------------------------


@app.command()
def versions(as_json: JsonOption = False) -> None:
    """Tuning versions, oldest first; the active one is marked ▶."""
    from bot.screens import version_list

    with friendly_errors():
        rows = _loop().versions()
    if as_json:
        print(json.dumps([{k: v for k, v in row.as_dict().items() if k != "payload"} for row in rows], ensure_ascii=False))
        return
    if not rows:
        console.print("no tuning versions yet: answers come from the base index")
        return
    console.print(version_list(rows))
    if not any(v.active for v in rows):
        console.print("▶ the base index (version 0, no tuning) is active")
    console.print("[dim]what a version holds: askloop review show pN · make one active: askloop rollback N[/]")


@app.command()
def rollback(
    version: Annotated[int, typer.Argument(min=0, help="The version to make active again (0 = base index, no tuning).")],
    user: UserOption = "",
) -> None:
    """Make an earlier tuning version active again (moderators only)."""
    with friendly_errors():
        loop = _loop()
        record = decided(lambda: loop.rollback(version, _who(user)))
    console.print(f"version {record.number} is active again" if record else "the base index (no tuning) is active again")


# -- users ----------------------------------------------------------------------------------


@app.command()
def flag(
    target: Annotated[str, typer.Argument(metavar="USER", help="The user whose votes should stop counting.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = "",
    user: UserOption = "",
) -> None:
    """Flag a user: their votes are still stored but count zero (moderators only)."""
    with friendly_errors():
        loop = _loop()
        decided(lambda: loop.flag(target, _who(user), reason))
    console.print(f"{escape(target)} flagged: their votes count zero from now on")


@app.command()
def unflag(
    target: Annotated[str, typer.Argument(metavar="USER")],
    user: UserOption = "",
) -> None:
    """Lift a flag (moderators only)."""
    with friendly_errors():
        loop = _loop()
        decided(lambda: loop.unflag(target, _who(user)))
    console.print(f"{escape(target)} unflagged")


# -- votes and corrections from the terminal -------------------------------------------------


@app.command(context_settings={"ignore_unknown_options": True})
def vote(
    answer_id: Annotated[int, typer.Argument(help="The answer's number (shown by `askloop ask`).")],
    value: Annotated[str, typer.Argument(help="+1 / up or -1 / down")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (useful on a 👎).")] = None,
    user: UserOption = "",
) -> None:
    """Vote on an answer: one vote per user per answer, a later one replaces it."""
    with friendly_errors():
        outcome = _loop().vote(answer_id, _who(user), parse_vote(value), source="cli", reason=reason)
    verb = "replaced your vote" if outcome.replaced else "recorded"
    counted = f"counts with weight {outcome.weight:g}" if outcome.counted else "stored but not counted"
    console.print(f"{'👍' if outcome.value > 0 else '👎'} {verb} on answer #{answer_id}: {counted} ({escape(outcome.why)})")


@app.command()
def unvote(answer_id: Annotated[int, typer.Argument()], user: UserOption = "") -> None:
    """Withdraw your vote on an answer."""
    with friendly_errors():
        outcome = _loop().withdraw_vote(answer_id, _who(user), source="cli")
    console.print("vote removed" if outcome.changed else "you had not voted on that answer")


@app.command()
def correct(
    answer_id: Annotated[int, typer.Argument(help="The answer's number.")],
    text: Annotated[str | None, typer.Argument(help="The better answer text.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="The document that answers it: path, URL, title or id.")] = None,
    user: UserOption = "",
) -> None:
    """Suggest a better answer and/or source; a moderator reviews it (`askloop review`)."""
    with friendly_errors():
        record = _loop().suggest_correction(answer_id, _who(user), text=text, source=source, origin="cli")
    console.print(f"thanks — correction c{record.id} is waiting for a moderator")


# -- stats, audit, export -------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@app.command()
def stats(as_json: JsonOption = False) -> None:
    """Answers, satisfaction (share of 👍 among votes) over time, the knowledge gaps, pending work,
    thresholds in force."""
    from rich.table import Table

    from bot.screens import gap_lines

    services = get_services()
    settings = services.settings
    with friendly_errors():
        loop = services.loop
        numbers = loop.stats()
        week = loop.drift(days=7)
        gaps = loop.knowledge_gaps()
    thresholds = {
        "answer_threshold": settings.answer_threshold,
        "top_k": settings.top_k,
        "vote_limit_per_hour": settings.vote_limit_per_hour,
        "asker_vote_weight": settings.asker_vote_weight,
        "other_vote_weight": settings.other_vote_weight,
        "gap_similarity": loop.config.gap_similarity,
    }
    if as_json:
        data = numbers.as_dict()
        for window, raw in zip(data["windows"], numbers.windows):
            window["satisfaction"] = raw.satisfaction
        drift = {"threshold": settings.answer_threshold, "days": [d.as_dict() for d in week]}
        print(json.dumps(data | {"thresholds": thresholds, "drift": drift, "knowledge_gaps": gaps.as_dict()},
                         ensure_ascii=False))
        return
    table = Table(title="Answers and satisfaction")
    for column in ("window", "answers", "no match", "votes", "👍", "👎", "satisfaction"):
        table.add_column(column, justify="right")
    for w in numbers.windows:
        table.add_row(w.window, str(w.answers), str(w.abstained), str(w.up + w.down), str(w.up), str(w.down), _pct(w.satisfaction))
    console.print(table)
    console.print(gap_lines(gaps))
    console.print(
        f"pending: {numbers.pending_corrections} correction(s), {numbers.open_proposals} open proposal(s) — `askloop review`"
    )
    console.print(
        f"active version: {numbers.active_version if numbers.active_version is not None else '0 (base index)'}"
        f" of {numbers.versions}; golden questions: {numbers.golden_questions}; flagged users: {numbers.flagged_users}"
    )
    console.print("thresholds: " + ", ".join(f"{k}={v}" for k, v in thresholds.items()))
    asked, low = sum(d.questions for d in week), sum(d.below_threshold for d in week)
    console.print(
        f"drift: today {_pct(week[-1].share if week[-1].questions else None)} of {week[-1].questions} question(s) "
        f"scored below the answer threshold; last 7 days {_pct(low / asked if asked else None)} of {asked}"
        " — per day: `askloop drift`"
    )


@app.command()
def audit(
    since: Annotated[str | None, typer.Option("--since", help="A date (2026-11-01) or a span back from now (7d, 24h).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000, help="At most this many (the most recent).")] = 200,
    action: Annotated[str | None, typer.Option("--action", help="Only this action or family (vote, proposal.apply, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, with the whole state before and after.")] = False,
) -> None:
    """Who did what, when, to which object (append-only), oldest first: one event a line."""
    from bot.screens import audit_lines

    with friendly_errors():
        events = _loop().audit(parse_since(since), limit, action=action)
    if as_json:
        for event in events:
            print(json.dumps(event.as_dict(), ensure_ascii=False))
        return
    if not events:
        console.print("no audit events" + (f" since {since}" if since else ""))
        return
    console.print(audit_lines(events))
    console.print("[dim]whole states before and after: askloop audit --json[/]")


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl (one object per answer) or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of standard output.")] = None,
) -> None:
    """Every answer with the sources shown, its votes and corrections, to take elsewhere."""
    from feedback.export import FORMATS, export_feedback

    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    with friendly_errors():
        loop = _loop()
        if output is None:
            count = export_feedback(loop.export_rows(), fmt, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                count = export_feedback(loop.export_rows(), fmt, handle)
    if output is not None:
        console.print(f"{count} answer(s) written to {escape(str(output))}")
