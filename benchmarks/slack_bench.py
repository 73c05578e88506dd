"""Slack bot speed through the real HTTP endpoint, against the Web API stand-in.

Starts `askloop serve --http` as a process over a small ingested corpus and measures:
1. answers: mention -> ack latency, and mention -> answer posted (chat.postMessage at the
   stand-in), p50/p99, extractive answers; one at a time, then arriving at a steady rate;
   then follow-ups in the threads (the asker's question that leans on the thread: searched
   alone and with the thread's topic, two searches);
2. reactions under load: many 👍/👎 reaction events (a share of them re-delivered as Slack
   retries) offered at a fixed rate (open loop, like Slack's deliveries); ack latency p50/p99, sustained events/s until every vote is in the
   database, and the count of lost or duplicated votes (both must be 0).

Targets on a 2-core machine: ack p99 <= 100 ms under load, answer posted p50 <= 150 ms,
>= 200 reaction events/s with zero lost or duplicated votes.

    .venv/bin/python benchmarks/slack_bench.py [--answers 60] [--follow-ups 30] [--reactions 3000] [--rate 250]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.conftest import TINY_CORPUS  # noqa: E402
from tests.support.slack_stub import BOT_USER_ID, TEAM_ID, SlackStub  # noqa: E402
from tests.support.slack import BotProcess, mention, message, prepare_home, reaction, sign  # noqa: E402

QUESTIONS = [
    "how do I connect to the VPN?", "how do I submit expenses?", "how do I request holidays?",
    "who carries the pager this week?", "when do I get a new laptop?", "can I deploy on Friday?",
]
FOLLOW_UPS = ["is it needed for the wiki?", "and with a receipt?", "who approves them?",
              "when does it start?", "and the old one?", "how do I roll it back?"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def envelope(event: dict, event_id: str) -> bytes:
    return json.dumps({
        "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def send(client: httpx.AsyncClient, url: str, body: bytes, retry: int = 0) -> float:
    headers = {"Content-Type": "application/json", **sign(body)}
    if retry:
        headers["X-Slack-Retry-Num"] = str(retry)
    start = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.TransportError:  # a kept-alive connection the server had just closed
        response = await client.post(url, content=body, headers=headers)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"unexpected {response.status_code}: {response.text[:200]}")
    return elapsed


async def bench_answers(url: str, stub: SlackStub, n: int) -> dict[str, float]:
    acks, posted = [], []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(n):
            channel = f"CANS{i:05d}"
            event = mention(QUESTIONS[i % len(QUESTIONS)], user=f"UASK{i:05d}", channel=channel)
            sent = time.monotonic()
            acks.append(await send(client, url, envelope(event, f"EvA{i:06d}")))
            call = await asyncio.to_thread(stub.wait_for, "chat.postMessage",
                                           lambda c, ch=channel: c.get("channel") == ch)
            posted.append(call[0].at - sent)
    return {"ack_p50_ms": pct(acks, 50) * 1000, "ack_p99_ms": pct(acks, 99) * 1000,
            "posted_p50_ms": pct(posted, 50) * 1000, "posted_p99_ms": pct(posted, 99) * 1000}


async def bench_follow_ups(url: str, stub: SlackStub, n: int) -> dict[str, float]:
    """A mention, then the asker's follow-up in its thread: ack and posted latency of the follow-up."""
    acks, posted = [], []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(n):
            channel, user = f"CFUP{i:05d}", f"UFUP{i:05d}"
            first = mention(QUESTIONS[i % len(QUESTIONS)], user=user, channel=channel)
            await send(client, url, envelope(first, f"EvF{i:06d}"))
            await asyncio.to_thread(stub.wait_for, "chat.postMessage", lambda c, ch=channel: c.get("channel") == ch)
            await asyncio.to_thread(stub.wait_for, "reactions.remove", lambda c, ch=channel: c.get("channel") == ch)
            follow_up = message(FOLLOW_UPS[i % len(FOLLOW_UPS)], user=user, channel=channel,
                                thread_ts=first["ts"], parent_user_id=user)
            sent = time.monotonic()
            acks.append(await send(client, url, envelope(follow_up, f"EvG{i:06d}")))
            calls = await asyncio.to_thread(stub.wait_for, "chat.postMessage",
                                            lambda c, ch=channel: c.get("channel") == ch, 30.0, 2)
            posted.append(calls[1].at - sent)
    return {"ack_p50_ms": pct(acks, 50) * 1000, "ack_p99_ms": pct(acks, 99) * 1000,
            "posted_p50_ms": pct(posted, 50) * 1000, "posted_p99_ms": pct(posted, 99) * 1000}


async def bench_answer_load(url: str, stub: SlackStub, n: int, rate: float) -> dict[str, float]:
    """Mentions arriving at `rate` per second: acks must stay fast while retrieval works."""
    import aiohttp

    acks: list[float] = []
    sent_at: dict[str, float] = {}

    async def one(session: aiohttp.ClientSession, i: int, due: float) -> None:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        channel = f"CLOAD{i:05d}"
        event = mention(QUESTIONS[i % len(QUESTIONS)], user=f"UL{i:05d}", channel=channel)
        body = envelope(event, f"EvL{i:06d}")
        sent_at[channel] = time.monotonic()
        began = time.perf_counter()
        async with session.post(url, data=body, headers={"Content-Type": "application/json",
                                                         **sign(body)}) as response:
            await response.read()
        acks.append(time.perf_counter() - began)

    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        await asyncio.gather(*(one(session, i, start + i / rate) for i in range(n)))
    calls = await asyncio.to_thread(stub.wait_for, "chat.postMessage",
                                    lambda c: str(c.get("channel", "")).startswith("CLOAD"), 120, n)
    posted = [c.at - sent_at[c["channel"]] for c in calls]
    return {"ack_p50_ms": pct(acks, 50) * 1000, "ack_p99_ms": pct(acks, 99) * 1000,
            "posted_p50_ms": pct(posted, 50) * 1000, "posted_p99_ms": pct(posted, 99) * 1000}


async def bench_reactions(url: str, stub: SlackStub, store, n: int, concurrency: int,
                          retry_share: float, rate: float, pid: int) -> dict[str, float]:
    # answers to vote on
    targets = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(20):
            channel = f"CVOTE{i:03d}"
            event = mention(QUESTIONS[i % len(QUESTIONS)], user=f"UQ{i:03d}", channel=channel)
            await send(client, url, envelope(event, f"EvQ{i:06d}"))
        for i in range(20):
            channel = f"CVOTE{i:03d}"
            (call,) = await asyncio.to_thread(stub.wait_for, "chat.postMessage",
                                              lambda c, ch=channel: c.get("channel") == ch)
            ts = next(t for (ch, t), m in list(stub.messages.items()) if ch == channel)
            record = None
            while record is None:
                record = store.answers.for_message(channel, ts)
                await asyncio.sleep(0.02)
            targets.append((channel, ts, record.id))
    rng = random.Random(7)
    deliveries = []
    expected: dict[tuple[int, str], int] = {}
    for i in range(n):
        channel, ts, answer_id = targets[i % len(targets)]
        user = f"UV{i:06d}"
        value = rng.choice(["+1", "-1"])
        body = envelope(reaction(value, user=user, channel=channel, ts=ts), f"EvR{i:07d}")
        deliveries.append((body, 0))
        if rng.random() < retry_share:
            deliveries.append((body, 1))  # Slack re-delivers: must not count twice
        expected[(answer_id, user)] = 1 if value == "+1" else -1
    rng.shuffle(deliveries)
    acks: list[float] = []
    # Open loop: deliveries are due at `rate` per second whatever the bot does (as Slack sends
    # them); a pool of senders (aiohttp: the lightest client, so the benchmark is not the
    # bottleneck) takes each one when it is due.
    import aiohttp

    prepared = []
    for body, retry in deliveries:
        headers = {"Content-Type": "application/json", **sign(body)}
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
        prepared.append((body, headers))
    cursor = iter(enumerate(prepared))

    async def sender(session: aiohttp.ClientSession, start: float) -> None:
        for i, (body, headers) in cursor:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"unexpected {response.status}")
            acks.append(time.perf_counter() - began)

    cpu_before, client_cpu = cpu_seconds(pid), time.process_time()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(sender(session, start) for _ in range(concurrency)))
    sent_in = time.perf_counter() - start
    client_cpu = time.process_time() - client_cpu
    answer_ids = sorted({a for _, _, a in targets})

    def recorded() -> dict[tuple[int, str], int]:
        got = {}
        for answer_id in answer_ids:
            for vote in store.votes.for_answer(answer_id):
                if vote.user.startswith("UV"):
                    got[(answer_id, vote.user)] = vote.value
        return got

    deadline = time.monotonic() + 120
    while True:
        got = await asyncio.to_thread(recorded)
        if len(got) >= len(expected) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)  # checking is a query: not too often, it competes for CPU
    done_in = time.perf_counter() - start
    cpu_per_event = (cpu_seconds(pid) - cpu_before) / len(deliveries)
    casts = 0
    for answer_id in answer_ids:
        casts += sum(1 for h in store.votes.history(answer_id=answer_id)
                     if str(h.get("user", h.get("user_id", ""))).startswith("UV") and h.get("action") == "cast")
    lost = sum(1 for key, value in expected.items() if got.get(key) != value)
    return {
        "events": len(deliveries), "retries": len(deliveries) - n,
        "ack_p50_ms": pct(acks, 50) * 1000, "ack_p99_ms": pct(acks, 99) * 1000,
        "sent_per_s": len(deliveries) / sent_in, "sustained_per_s": len(deliveries) / done_in,
        "server_cpu_ms_per_event": cpu_per_event * 1000,
        "client_cpu_ms_per_event": client_cpu / len(deliveries) * 1000,
        "votes_expected": len(expected), "votes_lost": lost, "votes_duplicated": max(0, casts - len(expected)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument("--follow-ups", type=int, default=30)
    parser.add_argument("--reactions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--retry-share", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=250.0, help="reaction deliveries per second")
    parser.add_argument("--answer-rate", type=float, default=20.0, help="mentions per second (load phase)")
    args = parser.parse_args()

    from bot.settings import default_model_cache
    from retrieval.embeddings import shared_embedder
    from feedback.store import FeedbackStore

    stub = SlackStub().start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus.jsonl"
        corpus.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n")
        home = root / "home"
        prepare_home(home, corpus, shared_embedder(None, "onnx-fp32", default_model_cache()))
        bot = BotProcess(home, stub, env={"ASKLOOP_LOG_LEVEL": "WARNING",
                                          "ASKLOOP_SLACK_REVIEW_POLL": "0"}).start(timeout=180)
        store = FeedbackStore(f"sqlite:///{home}/askloop.db")
        url = bot.url + "/slack/events"
        try:
            answers = asyncio.run(bench_answers(url, stub, args.answers))
            print(f"answers ({args.answers}, sequential, extractive): "
                  f"ack p50 {answers['ack_p50_ms']:.1f} ms, p99 {answers['ack_p99_ms']:.1f} ms; "
                  f"answer posted p50 {answers['posted_p50_ms']:.1f} ms, p99 {answers['posted_p99_ms']:.1f} ms")
            follow = asyncio.run(bench_follow_ups(url, stub, args.follow_ups))
            print(f"follow-ups in threads ({args.follow_ups}, sequential, read with the thread): "
                  f"ack p50 {follow['ack_p50_ms']:.1f} ms, p99 {follow['ack_p99_ms']:.1f} ms; "
                  f"answer posted p50 {follow['posted_p50_ms']:.1f} ms, p99 {follow['posted_p99_ms']:.1f} ms")
            load = asyncio.run(bench_answer_load(url, stub, args.answers * 2, args.answer_rate))
            print(f"answers under load ({args.answers * 2} mentions at {args.answer_rate:.0f}/s): "
                  f"ack p50 {load['ack_p50_ms']:.1f} ms, p99 {load['ack_p99_ms']:.1f} ms; "
                  f"answer posted p50 {load['posted_p50_ms']:.1f} ms, p99 {load['posted_p99_ms']:.1f} ms")
            votes = asyncio.run(bench_reactions(url, stub, store, args.reactions, args.concurrency,
                                                args.retry_share, args.rate, bot.process.pid))
            print(f"reactions ({votes['events']} events incl. {votes['retries']} retried deliveries, "
                  f"offered at {args.rate:.0f}/s, up to {args.concurrency} in flight): ack p50 {votes['ack_p50_ms']:.1f} ms, "
                  f"p99 {votes['ack_p99_ms']:.1f} ms; sent {votes['sent_per_s']:.0f}/s, "
                  f"sustained (all votes stored) {votes['sustained_per_s']:.0f} events/s; "
                  f"votes expected {votes['votes_expected']}, lost {votes['votes_lost']}, "
                  f"duplicated {votes['votes_duplicated']}")
            print(f"client (this benchmark) CPU per event {votes['client_cpu_ms_per_event']:.2f} ms; "
                  f"server CPU per reaction event {votes['server_cpu_ms_per_event']:.2f} ms "
                  f"(one core: at most {1000 / votes['server_cpu_ms_per_event']:.0f} events/s; "
                  f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        finally:
            store.close()
            bot.stop()
            stub.stop()


if __name__ == "__main__":
    main()
