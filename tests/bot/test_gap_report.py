"""The knowledge-gap report on every surface: `askloop stats` (and `--json`), the App Home, `/metrics`."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from typer.testing import CliRunner

from bot.cli import app
from bot.slack.blocks import home_view
from bot.slack.gaps import gap_blocks, with_gaps
from feedback.gaps import Gap, GapReport

runner = CliRunner()


def ask_and_vote(loop, question: str, user: str, value: int) -> int:
    answered = loop.answer(question, asker=user, origin="cli")
    loop.vote(answered.answer_id, user, value)
    return answered.answer_id


def test_stats_lists_the_gaps_for_people_and_machines(tiny_services) -> None:
    loop = tiny_services.loop
    for user in ("U1", "U2"):
        ask_and_vote(loop, "Can I bring my dog to the office?", user, -1)
    ask_and_vote(loop, "How do I request holidays?", "U3", 1)  # answered and liked: no gap
    shown = runner.invoke(app, ["stats"], env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    assert "knowledge gaps, last 30 days: 2 question(s)" in shown.stdout
    assert "2 × “Can I bring my dog to the office?” (2 person(s); 2👎" in shown.stdout
    data = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)
    gaps = data["knowledge_gaps"]
    assert gaps["questions"] == 2 and gaps["groups"] == 1 and gaps["gaps"][0]["askers"] == 2
    assert data["thresholds"]["gap_similarity"] == loop.config.gap_similarity


def test_metrics_export_the_gap_gauges(tiny_services) -> None:
    ask_and_vote(tiny_services.loop, "Can I bring my dog to the office?", "U1", -1)
    import asyncio

    from bot.observability.metrics import FeedbackGauges

    collector = FeedbackGauges(tiny_services.loop.gauges, ttl=0, deadline=10.0)
    asyncio.run(collector.refresh())
    values = {family.name: family.samples[0].value for family in collector.collect()}
    assert values["askloop_knowledge_gaps"] == 1.0 and values["askloop_knowledge_gap_questions"] == 1.0


def report(*questions: str) -> GapReport:
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    gaps = [Gap(question=q, questions=3, askers=2, down=3, up=0, abstained=3, last_asked=at) for q in questions]
    return GapReport(gaps, 30, 0.7, 3 * len(gaps))


def test_the_app_home_shows_the_gaps_after_satisfaction() -> None:
    view = home_view(is_moderator=False, stats={"answers (7d)": 3}, queue=[], versions=[], active=None)
    shown = with_gaps(view, report("Can I bring my <dog>?", *(f"q{i}" for i in range(6))))
    headers = [b["text"]["text"] for b in shown["blocks"] if b["type"] == "header"]
    assert headers.index("Knowledge gaps") == headers.index("Satisfaction") + 1
    text = json.dumps(shown)
    assert "Can I bring my &lt;dog&gt;?" in text and "21 question(s)" in text and "2 more group(s)" in text
    empty = gap_blocks(report())
    assert "Nothing the knowledge base failed to answer" in json.dumps(empty)
