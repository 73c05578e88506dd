"""How the loop's records read in a terminal: review items, proposals, versions, the audit log,
the gate's verdict and the knowledge gaps — the same screens for `askloop` and `askloop shell`.

Every screen is for a person: short lines that wrap at the terminal's width, paths shown
relative to where you are, long texts cut with "…" and a pointer to the command that shows all
of it. Machines get `--json` from the commands instead (the records' `as_dict()`), never these.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from feedback.errors import FeedbackError, NeedsOverride, PermissionDenied
from feedback.refs import proposal_ref

FIRST_LINE = 110  # characters of a long text shown in a list


def when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def short_path(reference: str | None, base: str | None = None) -> str:
    """A document id as a person types it: relative to the current folder when it lies below it."""
    if not reference:
        return ""
    if reference.startswith("/"):
        here = base or os.getcwd()
        try:
            relative = os.path.relpath(reference, here)
        except ValueError:
            return reference
        if not relative.startswith(".."):
            return relative
    return reference


def shorten_paths(text: str, base: str | None = None) -> str:
    """Absolute paths under the current folder written relative to it, inside a longer text."""
    here = (base or os.getcwd()).rstrip("/") + "/"
    return text.replace(here, "") if here != "/" else text


def clip(text: str | None, limit: int = FIRST_LINE) -> str:
    """The first line of `text`, at most `limit` characters ("…" when anything was left out)."""
    lines = (text or "").strip().splitlines()
    if not lines:
        return ""
    line = lines[0].strip()
    if len(line) > limit:
        return line[: limit - 1].rstrip() + "…"
    return line + ("…" if len(lines) > 1 else "")


# -- review -------------------------------------------------------------------------------------


def review_list(items: Sequence[Any]) -> RenderableType:
    """The review queue: one entry per item, its id and state on the first line, what it is below."""
    lines: list[RenderableType] = []
    for item in items:
        head = Text.assemble((f"{item.ref:<5}", "bold"), f" {item.status:<10} ",
                             (f"{item.kind} by {item.created_by}, {when(item.created_at)}", "dim"))
        lines.append(head)
        summary = shorten_paths(item.summary)
        lines.append(Text("      " + clip(summary, FIRST_LINE)))
    return Group(*lines)


def correction_detail(record: Any, answer: Any | None) -> RenderableType:
    """A correction as its moderator needs it: the question, what the bot said, the fix proposed."""
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column()
    rows.add_row("correction", f"c{record.id} — {record.status}")
    rows.add_row("question", f"“{escape(record.question or (answer.question if answer else ''))}”")
    if answer is not None:
        said = "no good match (abstained)" if answer.abstained else clip(answer.answer_text, 300)
        rows.add_row("the bot said", escape(said))
        if answer.shown:
            top = answer.shown[0]
            rows.add_row("its top source", escape(f"{top.title} ({short_path(top.doc_id)})"))
    rows.add_row("suggested by", f"{escape(record.user)}, {when(record.created_at)}")
    rows.add_row("better text", escape(record.text) if record.text else "[dim]—[/]")
    rows.add_row("better source", escape(short_path(record.source_ref)) if record.source_ref else "[dim]—[/]")
    if record.original_text is not None or record.original_source_ref is not None:
        original = " · ".join(part for part in (record.original_text or "", short_path(record.original_source_ref)) if part)
        rows.add_row("as first proposed", escape(original))
    if record.decided_by:
        rows.add_row("decided", f"{escape(record.status)} by {escape(record.decided_by)}, {when(record.decided_at)}"
                     + (f" — {escape(record.note)}" if record.note else ""))
    parts: list[RenderableType] = [rows]
    if record.status == "pending":
        parts.append(Text(f"\napprove: askloop review approve c{record.id} (edit with --text/--source) · "
                          f"reject: askloop review reject c{record.id}", style="dim"))
    return Group(*parts)


def proposal_detail(record: Any) -> RenderableType:
    """A proposal: its state, what it would change (the learning engine's own summary), and the
    gate's verdict."""
    state = record.status + (f" as version {record.applied_version}" if record.applied_version else "")
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column()
    rows.add_row("proposal", f"p{record.id} — {escape(state)}")
    rows.add_row("learned by", f"{escape(record.created_by)}, {when(record.created_at)}")
    if record.decided_by:
        rows.add_row("decided", f"by {escape(record.decided_by)}, {when(record.decided_at)}"
                     + (" (override: it had failed its evaluation)" if record.override else "")
                     + (f" — {escape(record.note)}" if record.note else ""))
    parts: list[RenderableType] = [rows, Text("\nWhat it changes", style="bold"),
                                   Text(shorten_paths(record.summary or "nothing"))]
    parts += [Text("\nEvaluation", style="bold"), evaluation_view(record.evaluation)]
    if record.status == "evaluated":
        parts.append(Text(f"\napprove (and apply): askloop review approve p{record.id} · "
                          f"reject: askloop review reject p{record.id}", style="dim"))
    elif record.status == "failing":
        parts.append(Text(f"\nit failed its evaluation: approving needs askloop review approve p{record.id} --override "
                          "(audited)", style="dim"))
    elif record.status == "approved":
        parts.append(Text(f"\napply: askloop review apply p{record.id}", style="dim"))
    return Group(*parts)


def evaluation_view(evaluation: dict[str, Any] | None) -> RenderableType:
    """The gate's verdict: passed, failing, or unchecked (no golden questions), then the figures."""
    if not evaluation:
        return Text("not evaluated yet", style="dim")
    golden, recent = evaluation.get("golden"), evaluation.get("recent")
    if not isinstance(golden, dict) or not isinstance(recent, dict):  # another tool's shape
        return Text("; ".join(f"{k}: {v}" for k, v in list(evaluation.items())[:12]))
    parts: list[RenderableType] = []
    if not golden.get("count"):
        parts.append(Text.assemble(("UNCHECKED", "bold yellow"),
                                   " — no golden questions to compare against yet. An approved correction that "
                                   "cites a document adds one; add your own with askloop golden add."))
    else:
        passed = bool(evaluation.get("passed"))
        verdict = ("PASSED", "bold green") if passed else ("FAILING", "bold red")
        worse = golden.get("worse") or []
        parts.append(Text.assemble(verdict, f" — {golden['count']} golden question(s): {golden.get('better', 0)} better, "
                                   f"{len(worse)} worse by more than {evaluation.get('tolerance')} nDCG@10"))
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        table.add_column("golden set")
        for metric in golden.get("before", {}):
            table.add_column(metric, justify="right")
        for label in ("before", "after"):
            table.add_row(label, *(f"{value:.3f}" for value in golden.get(label, {}).values()))
        parts.append(table)
        for item in worse[:5]:
            parts.append(Text(f"  worse: “{clip(item['question'], 70)}” nDCG@10 {item['before']:.2f} → {item['after']:.2f}"))
    parts.append(Text(f"recent questions: {recent.get('top_changed', 0)} of {recent.get('count', 0)} would get a different "
                      f"top source (compared with the {evaluation.get('compared_with', 'base index')})"))
    return Group(*parts)


# -- versions and audit --------------------------------------------------------------------------


def version_list(rows: Sequence[Any]) -> RenderableType:
    """One line per version (▶ marks the active one), and the first line of what it holds."""
    lines: list[RenderableType] = []
    for v in rows:
        origin = f"from p{v.proposal_id}" if v.proposal_id else "—"
        lines.append(Text.assemble(("▶ " if v.active else "  ", "bold green"), (f"version {v.number:<3}", "bold"),
                                   f" {when(v.created_at)}  by {v.created_by}  {origin}"))
        if v.note:
            lines.append(Text("    " + clip(shorten_paths(v.note), FIRST_LINE), style="dim"))
    return Group(*lines)


def _short_value(value: Any, limit: int = 40) -> str:
    """A value as a few characters: long texts cut, structures named by their size."""
    if isinstance(value, str):
        text = value
    else:
        text = shorten_paths(json.dumps(value, ensure_ascii=False))
        if len(text) > limit and isinstance(value, dict):
            return f"{{{len(value)} fields}}"
        if len(text) > limit and isinstance(value, list):
            return f"[{len(value)} items]"
    text = shorten_paths(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def change_summary(before: dict[str, Any] | None, after: dict[str, Any] | None, keys: int = 3) -> str:
    """What an audit event changed, in a few words: the keys that differ, old → new, values cut."""
    before, after = before or {}, after or {}
    changed = [k for k in dict.fromkeys([*after, *before]) if before.get(k) != after.get(k)]
    parts = []
    for key in changed[:keys]:
        if key in before and key in after:
            parts.append(f"{key}: {_short_value(before[key], 20)} → {_short_value(after[key])}")
        elif key in after:
            parts.append(f"{key}: {_short_value(after[key])}")
        else:
            parts.append(f"{key} removed")
    if len(changed) > keys:
        parts.append(f"+{len(changed) - keys} more")
    return "; ".join(parts)


def audit_lines(events: Iterable[Any]) -> RenderableType:
    """The audit log, one event a line (whole payloads: `askloop audit --json`)."""
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    for column in ("when", "who", "action", "object", "change"):
        table.add_column(column, overflow="fold", no_wrap=column in {"when", "action"})
    for e in events:
        change = change_summary(e.before, e.after)
        if e.note:
            change += f" — {e.note}"
        table.add_row(when(e.at), escape(e.actor), escape(e.action), escape(f"{e.object_type}:{e.object_id}"),
                      escape(change))
    return table


# -- knowledge gaps ------------------------------------------------------------------------------


def gap_lines(report: Any, limit: int = 5) -> RenderableType:
    """The first `limit` knowledge gaps: the typical question, how often, by how many people."""
    if not report.gaps:
        return Text(f"knowledge gaps: none in the last {report.days} days (no voted abstentions, no 👎 left "
                    "without a correction)", style="dim")
    lines: list[RenderableType] = [Text(
        f"knowledge gaps, last {report.days} days: {report.questions} question(s) the knowledge base could not "
        f"answer, in {len(report.gaps)} group(s) — write documents for these:", style="bold")]
    for gap in report.gaps[:limit]:
        votes = " ".join(part for part in (f"{gap.down}👎" if gap.down else "", f"{gap.up}👍" if gap.up else "") if part)
        lines.append(Text(f"  {gap.questions:>3} × “{clip(gap.question, 80)}” ({gap.askers} person(s); {votes}; "
                          f"last {when(gap.last_asked)})"))
        for example in gap.examples[:2]:
            lines.append(Text(f"        also: “{clip(example, 80)}”", style="dim"))
    if len(report.gaps) > limit:
        lines.append(Text(f"  … and {len(report.gaps) - limit} more group(s): askloop stats --json", style="dim"))
    return Group(*lines)


def explain_refusal(exc: FeedbackError, *, approve_anyway: str, own_user: str) -> str:
    """The loop's refusal for a terminal, plus how to get past it: `approve_anyway` is this
    interface's override command (with `{ref}` for the proposal), `own_user` how to act as the
    OS user here."""
    if isinstance(exc, NeedsOverride):
        return f"{exc} — to approve it anyway: {approve_anyway.format(ref=proposal_ref(exc.proposal_id))}"
    if isinstance(exc, PermissionDenied):
        return (f"{exc}. On a shared database moderators are listed in ASKLOOP_MODERATORS; on your own "
                f"database you moderate as your OS user ({own_user})")
    return str(exc)


__all__ = [
    "audit_lines", "change_summary", "clip", "correction_detail", "evaluation_view", "explain_refusal", "gap_lines",
    "proposal_detail", "review_list", "short_path", "shorten_paths", "version_list", "when",
]

