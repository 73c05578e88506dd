"""`askloop ingest`, `askloop ask`, `askloop shell`: the knowledge base from the command line.

Nothing heavy is imported here: the model, Chroma and the feedback database load when a command
that needs them runs (with a spinner the first time), not when `askloop --help` starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from bot.cli_app import app, console, err_console, fail, finish_now, friendly_errors, get_services
from retrieval.cleaning import printable

if TYPE_CHECKING:
    from retrieval.answer import Answer

DEFAULT_THRESHOLD = 0.35


def print_answer(answer: "Answer", threshold: float = DEFAULT_THRESHOLD) -> None:
    """Human-readable answer and numbered sources ("Title › Section — location", confidence: see
    `retrieval.confidence`). Text from documents may hold escape sequences (old stores, file
    names): shown, never obeyed."""
    from retrieval.answer import source_label
    from retrieval.confidence import confidence_label

    console.print(escape(printable(answer.text, multiline=True)))
    if answer.hits:
        label = "Closest sources" if answer.abstained else "Sources"
        console.print(f"\n[bold]{label}:[/]")
        for number, hit in enumerate(answer.hits, 1):
            console.print(
                f"  [{number}] {escape(printable(source_label(hit)))} — {escape(printable(hit.source))} "
                f"[dim](confidence {confidence_label(hit.score, threshold)})[/]"
            )


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders: Markdown, text, HTML, PDF, BEIR corpus.jsonl.")],
    prune: Annotated[bool, typer.Option(help="Remove documents whose files are gone.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Add documents to the knowledge base (unchanged ones are skipped).

    Exits 1 when nothing could be ingested, or when a path given is missing, of a kind askloop
    does not read, or not a regular file (the other paths are ingested all the same). Files
    that cannot be read are listed and skipped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bot.progress import first_load

    services = get_services()
    with friendly_errors():
        first_load(services, err_console)
        ingestor = services.ingestor
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=as_json or not err_console.is_terminal,
        ) as bar:
            task = bar.add_task("embedding chunks", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = ingestor.run(paths, prune=prune, progress=progress)
    for problem in report.problems:
        err_console.print(f"[yellow]skipped[/] {escape(printable(problem.path))}: {escape(printable(problem.reason))}")
    if as_json:
        console.print_json(json.dumps(report.as_dict()), ensure_ascii=True)  # no raw C1 or bidi controls
    else:
        console.print(
            f"{report.files} file(s): documents {report.documents_added} added, "
            f"{report.documents_updated} updated, {report.documents_skipped} unchanged"
            + (f", {report.documents_removed} removed" if report.documents_removed else "")
            + f"; chunks {report.chunks_added} added, {report.chunks_updated} updated, "
            f"{report.chunks_removed} removed"
            + (f"; {len(report.problems)} problem(s)" if report.problems else "")
        )
    if report.nothing_ingested:
        fail("nothing could be ingested")
    if report.unusable_paths:
        # a path given that is not there (a typo, an unmounted share) must not pass unnoticed
        # in a script; what could be read is ingested all the same
        count = len(report.unusable_paths)
        fail(
            f"{count} of the paths given could not be read, the rest was ingested: "
            + escape(", ".join(printable(path) for path in report.unusable_paths))
        )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print answer and sources as JSON.")] = False,
    k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, max=50, help="How many sources.")] = None,
) -> None:
    """Answer one question from the knowledge base."""
    from bot.progress import first_load, interruptible
    from bot.services import local_user
    from retrieval.confidence import confidence

    services = get_services()
    threshold = services.settings.answer_threshold
    with friendly_errors():
        services.loop  # the feedback database first: a missing or outdated one fails in one line, at once
        first_load(services, err_console)
        answered = interruptible(lambda: services.loop.answer(question, asker=local_user(), origin="cli", k=k))
    answer, answer_id = answered.answer, answered.answer_id
    if as_json:
        data = answer.as_dict() | {"answer_id": answer_id}
        for source, hit in zip(data["sources"], answer.hits):  # type: ignore[call-overload]
            source["confidence"] = round(confidence(hit.score, threshold), 4)
        print(json.dumps(data, ensure_ascii=False))
    else:
        print_answer(answer, threshold)
        if answer_id is not None:
            console.print(f"\n[dim]answer #{answer_id} — vote with `askloop vote {answer_id} +1` or -1; "
                          f"correct with `askloop correct {answer_id} --source FILE`[/]")
    finish_now(services)


@app.command()
def shell(
    user: Annotated[str, typer.Option(help="Who you are in this session (default: your OS user name).")] = "",
) -> None:
    """Chat with the bot in the terminal (also reads questions piped in, one per line).

    On your own database (no ASKLOOP_DATABASE_URL) you are a moderator in your own shell:
    /approve, /reject and /rollback work without ASKLOOP_MODERATORS.
    """
    from bot.cli_app import expected_errors
    from bot.progress import first_load
    from bot.services import local_user
    from bot.shell import Shell
    from bot.shell_feedback import register

    services = get_services()
    with friendly_errors():  # fail fast, in one line, when the vector store or the database cannot be used
        services.store
        services.loop  # opening the loop checks the database's schema
    who = user or local_user()
    threshold = services.settings.answer_threshold

    runner = Shell(
        services.loop,
        user=who,
        console=console,
        ask=lambda question: services.loop.answer(question, asker=who, origin="shell"),
        show=lambda shown: print_answer(shown, threshold),
        errors=expected_errors,
        history=services.settings.home / "shell-history",
        prepare=lambda: first_load(services, err_console),
    )
    register(runner)
    raise typer.Exit(runner.run())
