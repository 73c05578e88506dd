"""App Home: satisfaction, the knowledge gaps and the state of the loop for everyone; the review
queue and the versions (with roll back) for moderators. The figures are the loop's, so they are
the same as `askloop stats` and the `/metrics` gauges."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.deps import BotDeps
from bot.slack.gaps import with_gaps


def stats_figures(deps: BotDeps, gaps: Any = None) -> dict[str, Any]:
    """Satisfaction, the knowledge gaps (`gaps`: the loop's report, read here when not given) and
    the state of the loop, with the thresholds that shape answers."""
    stats = deps.loop.stats()
    figures: dict[str, Any] = {}
    for window in stats.windows:
        if window.window not in {"7d", "all"}:
            continue
        sat = window.satisfaction
        figures[f"answers ({window.window})"] = window.answers
        figures[f"abstained ({window.window})"] = window.abstained
        figures[f"👍 / 👎 ({window.window})"] = f"{window.up} / {window.down}"
        figures[f"satisfaction ({window.window})"] = "–" if sat is None else f"{sat:.0%}"
    gaps = gaps if gaps is not None else deps.loop.knowledge_gaps()
    figures[f"knowledge gaps ({gaps.days}d)"] = (f"{gaps.questions} unanswered question(s) in {len(gaps.gaps)} group(s)"
                                                 if gaps.gaps else "none")
    figures["pending corrections"] = stats.pending_corrections
    figures["open proposals"] = stats.open_proposals
    figures["active tuning version"] = stats.active_version or "none (base index)"
    figures["answer threshold"] = deps.settings.answer_threshold
    return figures


async def publish_home(deps: BotDeps, client: AsyncWebClient, user: str) -> None:
    moderator = await deps.may_moderate(client, user)

    def gather() -> tuple[dict[str, Any], Any, list[Any], list[Any], int | None]:
        gaps = deps.loop.knowledge_gaps()
        figures = stats_figures(deps, gaps)
        if not moderator:
            return figures, gaps, [], [], None
        queue = deps.loop.review_queue(1, 10).items
        versions = list(reversed(deps.loop.versions()))[:10]
        return figures, gaps, queue, versions, deps.loop.active_version_number()

    figures, gaps, queue, versions, active = await deps.db(gather, timeout=10.0)
    view = with_gaps(kit.home_view(is_moderator=moderator, stats=figures, queue=queue, versions=versions,
                                   active=active), gaps)
    await client.views_publish(user_id=user, view=view)
