"""`askloop drift`, `askloop worker`: operating askloop as a service (docs/operations.md)."""

from __future__ import annotations

import json
import logging
import signal
from typing import Annotated

import typer
from rich.table import Table

from bot.cli_app import app, console, fail, friendly_errors, get_services
from feedback.refs import proposal_ref


@app.command()
def drift(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days back (UTC), today included.")] = 14,
    threshold: Annotated[float | None, typer.Option(help="Uncovered below this score (default: the answer threshold).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Per day: the share of questions whose best match scored below the answer threshold.

    A rising share means people ask about things the knowledge base does not cover: add documents.
    """
    services = get_services()
    limit = services.settings.answer_threshold if threshold is None else threshold
    with friendly_errors():
        rows = services.loop.drift(days, threshold=limit)
    if as_json:
        print(json.dumps({"threshold": limit, "days": [r.as_dict() for r in rows]}))
        return
    table = Table(title=f"Questions below the answer threshold ({limit:.2f}), per day (UTC)")
    for column in ("day", "questions", "below", "share"):
        table.add_column(column, justify="right")
    for row in rows:
        share = f"{row.share:.0%}" if row.questions else "—"
        table.add_row(row.day.isoformat(), str(row.questions), str(row.below_threshold), share)
    console.print(table)
    total = sum(r.questions for r in rows)
    low = sum(r.below_threshold for r in rows)
    console.print(f"{days} day(s): {low} of {total} question(s) below the threshold"
                  + (f" ({low / total:.0%})" if total else ""))


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Check once (and build if due), then exit.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --once: build even if not due.")] = False,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="Serve Prometheus metrics on this port (0: off).")] = 0,
) -> None:
    """Build and evaluate proposals in the background, once across replicas (a database lock).

    Runs after ASKLOOP_LEARN_AFTER_VOTES new validated votes/approved corrections, or every
    ASKLOOP_LEARN_INTERVAL seconds when there is new feedback. Safe to run on every replica.
    """
    if force and not once:
        fail("--force only makes sense with --once")
    from bot.observability import configure_from_settings
    from bot.worker import LearningWorker

    services = get_services()
    configure_from_settings(services.settings)
    with friendly_errors():
        learner = LearningWorker.from_settings(services.loop, services.settings)
        if once:
            report = learner.run_once(force=force)
            console.print(f"{report.outcome}" + (f": {report.detail}" if report.detail else "")
                          + (f" (proposal {proposal_ref(report.proposal_id)})" if report.proposal_id else ""))
            if report.outcome == "failed":
                fail("background learning failed")
            return
    if metrics_port:
        from prometheus_client import start_http_server

        from bot.observability import REGISTRY, count_logged_errors

        count_logged_errors()
        start_http_server(metrics_port, registry=REGISTRY)
    logging.getLogger("askloop.worker").info(
        "worker started", extra={"after_votes": learner.after_votes, "interval": learner.interval,
                                 "metrics_port": metrics_port or None}
    )
    signal.signal(signal.SIGTERM, lambda *_: learner.stop(0))
    try:
        learner.loop_forever()
    except KeyboardInterrupt:
        pass
