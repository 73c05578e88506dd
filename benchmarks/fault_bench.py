"""Votes while PostgreSQL is cut or stalled, against a real `askloop serve --http`.

Starts the bot as a process on a scratch PostgreSQL database reached through a fault proxy
(tests/support/faults.py), the Slack Web API stand-in and the tiny corpus. For each scenario it gets
one answer posted, then takes the database away (`cut`: every connection reset, new ones
refused; `stall`: connections accepted, nothing forwarded) and, during the fault, sends a
stream of signed 👍 reaction events (one per user) to /slack/events, like Slack: a delivery
not acknowledged with a 2xx within 3 s is re-delivered (X-Slack-Retry-Num) after the delays of
`--retries` (Slack's own schedule is about 0 s, 1 min and 5 min; compressed here). The
database comes back after `--fault-seconds`; once everything settled the votes are counted in
the database. Per scenario it prints:

- sent: votes sent (distinct users); acked: those that got a 2xx (at some attempt);
- stored: votes in the database at the end;
- told: voters whose vote is not stored but who were told so (an ephemeral message to them);
- lost: acknowledged, not stored, not told — what must be 0;
- never acked: Slack would have given up on these (not acknowledged, so not promised);
- /healthz during the fault: statuses and the slowest answer (must stay under 2 s).

Bounded: `--votes` per scenario (default 20), every request has a timeout, every wait a
deadline; only loopback addresses are used.

    .venv/bin/python benchmarks/fault_bench.py [--votes 20] [--fault-seconds 10] [--scenarios cut,stall]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from tests.conftest import PG_URL, TINY_CORPUS, postgres_available  # noqa: E402
from tests.support.faults import FaultProxy  # noqa: E402
from tests.support.ops import scratch_database  # noqa: E402
from tests.support.slack_stub import BOT_USER_ID, TEAM_ID, SlackStub  # noqa: E402
from tests.support.slack import BotProcess, mention, prepare_home, reaction, sign  # noqa: E402

SLACK_ACK_TIMEOUT = 3.0  # Slack re-delivers an event that was not acknowledged within 3 s


def envelope(event: dict, event_id: str) -> bytes:
    return json.dumps({
        "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }).encode()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


@dataclass
class Delivery:
    user: str
    attempts: list[str] = field(default_factory=list)  # "200", "503", "timeout", ...
    acked: bool = False
    ack_seconds: list[float] = field(default_factory=list)


async def deliver(client: httpx.AsyncClient, url: str, body: bytes, delivery: Delivery,
                  retries: list[float]) -> None:
    for attempt, delay in enumerate([0.0, *retries]):
        if delay:
            await asyncio.sleep(delay)
        headers = {"Content-Type": "application/json", **sign(body)}
        if attempt:
            headers |= {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_error"}
        start = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers=headers, timeout=SLACK_ACK_TIMEOUT)
            outcome = str(response.status_code)
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.TransportError as exc:
            outcome = type(exc).__name__
        delivery.ack_seconds.append(time.perf_counter() - start)
        delivery.attempts.append(outcome)
        if outcome.startswith("2"):
            delivery.acked = True
            return


async def watch_health(url: str, stop: asyncio.Event) -> list[tuple[int | str, float]]:
    seen: list[tuple[int | str, float]] = []
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                status: int | str = (await client.get(url, timeout=10)).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            seen.append((status, time.perf_counter() - start))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    return seen


def posted_answer(stub: SlackStub, db_dsn: str, channel: str, timeout: float = 120) -> tuple[str, int]:
    """The ts of the answer posted in `channel` and its answer id, once linked in the database."""
    stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(db_dsn, connect_timeout=3) as conn:
            row = conn.execute("SELECT message_ts, id FROM answer WHERE channel = %s AND message_ts IS NOT NULL",
                               (channel,)).fetchone()
        if row:
            return str(row[0]), int(row[1])
        time.sleep(0.1)
    raise SystemExit(f"no answer was linked in {channel} within {timeout}s")


def stored_voters(db_dsn: str, answer_id: int) -> set[str]:
    with psycopg.connect(db_dsn, connect_timeout=3) as conn:
        return {row[0] for row in conn.execute("SELECT user_id FROM vote WHERE answer_id = %s", (answer_id,))}


def told_voters(stub: SlackStub, users: set[str]) -> set[str]:
    """Voters the bot told something privately (an ephemeral message) or mentioned by name."""
    told = set()
    for call in stub.calls:
        if call.method == "chat.postEphemeral" and call.get("user") in users:
            told.add(call.get("user"))
        elif call.method in ("chat.postMessage", "chat.update"):
            told |= {u for u in users if f"<@{u}>" in call.blob()}
    return told


async def scenario(name: str, bot: BotProcess, stub: SlackStub, proxy: FaultProxy, db_dsn: str,
                   args: argparse.Namespace) -> dict:
    url = bot.url + "/slack/events"
    channel = f"CFAULT{name.upper()}"
    async with httpx.AsyncClient() as client:
        body = envelope(mention("how do I submit expenses?", user="UASKER", channel=channel), f"EvM{name}")
        await client.post(url, content=body, headers={"Content-Type": "application/json", **sign(body)}, timeout=10)
    ts, answer_id = await asyncio.to_thread(posted_answer, stub, db_dsn, channel)
    before = await asyncio.to_thread(stored_voters, db_dsn, answer_id)

    getattr(proxy, name)()  # cut() or stall()
    fault_start = time.monotonic()
    stop_health = asyncio.Event()
    health = asyncio.create_task(watch_health(bot.url + "/healthz", stop_health))
    deliveries: list[Delivery] = []
    async with httpx.AsyncClient() as client:
        tasks = []
        gap = args.fault_seconds * 0.8 / max(1, args.votes)  # all votes sent while the fault lasts
        for i in range(args.votes):
            user = f"UF{name[:2].upper()}{i:04d}"
            delivery = Delivery(user)
            deliveries.append(delivery)
            event = reaction("+1", user=user, channel=channel, ts=ts)
            tasks.append(asyncio.create_task(deliver(client, url, envelope(event, f"Ev{name}{i:05d}"),
                                                     delivery, args.retries)))
            await asyncio.sleep(gap)
        remaining = args.fault_seconds - (time.monotonic() - fault_start)
        if remaining > 0:
            await asyncio.sleep(remaining)
        stop_health.set()
        probes = await health
        proxy.passing()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=sum(args.retries) + 60)
    await asyncio.sleep(args.settle)

    users = {d.user for d in deliveries}
    stored = (await asyncio.to_thread(stored_voters, db_dsn, answer_id) - before) & users
    told = told_voters(stub, users - stored)
    acked = {d.user for d in deliveries if d.acked}
    lost = acked - stored - told
    return {
        "scenario": name, "fault_seconds": args.fault_seconds, "sent": len(users), "acked": len(acked),
        "acked_first_try": sum(1 for d in deliveries if d.attempts[:1] and d.attempts[0].startswith("2")),
        "stored": len(stored), "told": len(told), "lost": len(lost),
        "never_acked": len(users - acked),
        "attempts": dict(Counter(a for d in deliveries for a in d.attempts)),
        "ack_p50_ms": round(pct([s for d in deliveries for s in d.ack_seconds], 50) * 1000, 1),
        "ack_p99_ms": round(pct([s for d in deliveries for s in d.ack_seconds], 99) * 1000, 1),
        "healthz": dict(Counter(str(s) for s, _ in probes)),
        "healthz_slowest_s": round(max((t for _, t in probes), default=0.0), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=20, help="votes sent during each fault (<= 500)")
    parser.add_argument("--fault-seconds", type=float, default=10.0, help="how long each fault lasts (<= 120)")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait after the fault before counting")
    parser.add_argument("--retries", type=lambda s: [float(x) for x in s.split(",") if x], default=[2.0, 6.0, 15.0],
                        help="Slack's re-delivery delays, compressed (comma-separated seconds)")
    parser.add_argument("--scenarios", default="cut,stall")
    parser.add_argument("--json", action="store_true", help="print one JSON object per scenario")
    args = parser.parse_args()
    args.votes = max(1, min(args.votes, 500))
    args.fault_seconds = max(1.0, min(args.fault_seconds, 120.0))
    reason = postgres_available()
    if reason:
        raise SystemExit(reason)

    from retrieval.embeddings import shared_embedder

    results = []
    with tempfile.TemporaryDirectory(prefix="askloop-fault-") as tmp, scratch_database(PG_URL) as db_url:
        root = Path(tmp)
        corpus = root / "corpus.jsonl"
        corpus.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n")
        proxy = FaultProxy.for_url(db_url)
        proxied = proxy.route(db_url)
        home = root / "home"
        prepare_home(home, corpus, shared_embedder(None), {"database_url": proxied})
        stub = SlackStub().start()
        bot = BotProcess(home, stub, env={"ASKLOOP_DATABASE_URL": proxied, "ASKLOOP_SLACK_LOOKING_AFTER": "0",
                                          "ASKLOOP_SLACK_REVIEW_POLL": "0"})
        try:
            bot.start()
            db_dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
            for name in args.scenarios.split(","):
                if name not in ("cut", "stall"):
                    raise SystemExit(f"unknown scenario {name!r}: use cut and/or stall")
                result = asyncio.run(scenario(name, bot, stub, proxy, db_dsn, args))
                results.append(result)
                if args.json:
                    print(json.dumps(result), flush=True)
                else:
                    print(f"database {name} for {result['fault_seconds']:g} s, {result['sent']} votes sent during it: "
                          f"{result['stored']} stored, {result['lost']} lost, {result['told']} told "
                          f"({result['acked']} acked, {result['acked_first_try']} at the first delivery, "
                          f"{result['never_acked']} never acked; deliveries {result['attempts']}; "
                          f"ack p50 {result['ack_p50_ms']} ms, p99 {result['ack_p99_ms']} ms); "
                          f"/healthz during the fault {result['healthz']}, slowest {result['healthz_slowest_s']} s",
                          flush=True)
        finally:
            bot.stop()
            stub.stop()
            proxy.close()


if __name__ == "__main__":
    main()
