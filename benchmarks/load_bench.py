"""Load on two replicas: many concurrent, correctly signed Slack events (mentions and reactions,
with a share of retried deliveries sent to the *other* replica), against the real stack — a
`chroma run` server, a PostgreSQL database of its own, two `askloop serve --http` processes
started with the compose command, and the Slack Web API stand-in from the tests.

Prints: ack latency p50/p99 (HTTP response to Slack), event → chat.postMessage latency p50/p99,
reaction throughput, and the integrity checks — answers lost or duplicated, votes lost or
duplicated (retries included).

    .venv/bin/python benchmarks/load_bench.py [--mentions 120] [--voters 5] [--concurrency 16]

Needs PostgreSQL on 127.0.0.1:5432 (ASKLOOP_TEST_POSTGRES_URL to override).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bot.slack.blocks import SUGGEST as ANSWER_MARK  # noqa: E402  (only answers carry this button)
from tests.support.chroma_server import ChromaServer, free_port  # noqa: E402
from tests.support.ops import (  # noqa: E402
    ServiceProcess,
    askloop_env,
    compose,
    compose_command,
    run_askloop,
    scratch_database,
    wait_http,
    with_listen,
)
from tests.support.slack_stub import BOT_USER_ID, TEAM_ID, SlackStub  # noqa: E402
from tests.support.slack import BOT_TOKEN, SIGNING_SECRET, sign  # noqa: E402

PG_URL = os.environ.get("ASKLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPUS = ROOT.parent / "shared" / "data" / "stackfaq"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def resident_mb(pid: int) -> float:
    """Resident memory of a process and its children (Linux /proc), in MB."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    return total / 1024


def env_for(chroma_url: str, db_url: str, stub: SlackStub, home: Path) -> dict[str, str]:
    loopback = {"ASKLOOP_CHROMA_URL": chroma_url, "ASKLOOP_DATABASE_URL": db_url,
                "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    env = askloop_env()
    for key, value in compose()["services"]["bot"]["environment"].items():
        env[key] = loopback.get(key, str(value))
    env.update(ASKLOOP_HOME=str(home), SLACK_API_URL=stub.url, ASKLOOP_SLACK_REVIEW_POLL="0",
               ASKLOOP_COLLECTION="askloop-load", ASKLOOP_LOG_LEVEL="WARNING",
               # many votes from few synthetic users: lift the per-user hourly limit
               ASKLOOP_VOTE_LIMIT_PER_HOUR="100000")
    return env


def event_body(event: dict, event_id: str) -> bytes:
    return json.dumps({
        "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }).encode()


async def deliver(client: httpx.AsyncClient, url: str, body: bytes, retry: int = 0) -> float:
    headers = {"Content-Type": "application/json"} | sign(body)
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    start = time.perf_counter()
    response = await client.post(url + "/slack/events", content=body, headers=headers)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return elapsed


async def run_load(urls: list[str], stub: SlackStub, questions: list[str], voters: int,
                   concurrency: int, retry_share: float, store) -> dict:
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)
        acks: list[float] = []
        sent_at: dict[str, float] = {}
        retries = 0

        async def send(i: int, event: dict, event_id: str) -> None:
            nonlocal retries
            async with gate:
                target = urls[i % len(urls)]
                acks.append(await deliver(client, target, event_body(event, event_id)))
                if rng.random() < retry_share:  # Slack retries to whichever replica the LB picks
                    retries += 1
                    other = urls[(i + 1) % len(urls)]
                    acks.append(await deliver(client, other, event_body(event, event_id), retry=1))

        # -- phase 1: mentions ------------------------------------------------------------------
        mentions = []
        for i, question in enumerate(questions):
            channel, ts = f"CLOAD{i:05d}", f"{1700000000 + i}.000100"
            event = {"type": "app_mention", "user": f"UASK{i % 17:03d}", "ts": ts, "event_ts": ts,
                     "text": f"<@{BOT_USER_ID}> {question}", "channel": channel}
            mentions.append((i, event, f"EvM{i:05d}"))
        t0 = time.perf_counter()
        for _, event, _ in mentions:
            sent_at[event["channel"]] = time.monotonic()
        await asyncio.gather(*(send(i, e, eid) for i, e, eid in mentions))
        mention_acks = list(acks)
        # An answer is the first chat.postMessage or chat.update (a slow answer first posts
        # "looking…" and then updates it) whose blocks carry the answer's buttons.
        def is_answer(call) -> bool:
            return str(call.get("channel", "")).startswith("CLOAD") and ANSWER_MARK in json.dumps(call.get("blocks"))

        def answer_calls() -> list:
            return stub.find("chat.postMessage", is_answer) + stub.find("chat.update", is_answer)

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if len({c.get("channel") for c in answer_calls()}) >= len(mentions):
                break
            await asyncio.sleep(0.2)
        mention_seconds = time.perf_counter() - t0
        per_channel: dict[str, list] = {}
        for call in answer_calls():
            per_channel.setdefault(call.get("channel"), []).append(call)
        answer_latency = [min(c.at for c in calls) - sent_at[ch] for ch, calls in per_channel.items()]
        # Duplicates: more than one message posted in a question's thread ("looking…" is updated
        # in place, so a correct run posts exactly one).
        posts: dict[str, int] = {}
        for call in stub.find("chat.postMessage", lambda c: str(c.get("channel", "")).startswith("CLOAD")):
            posts[call.get("channel")] = posts.get(call.get("channel"), 0) + 1
        duplicates = sum(n - 1 for n in posts.values())
        lost_answers = len(mentions) - len(per_channel)

        # Wait until every answer is linked to its Slack message (what reactions refer to).
        answers: dict[str, tuple[str, int]] = {}
        while time.monotonic() < deadline and len(answers) < len(per_channel):
            for (channel, ts), message in list(stub.messages.items()):
                if channel in per_channel and channel not in answers and message.get("blocks"):
                    record = await asyncio.to_thread(store.answers.for_message, channel, ts)
                    if record is not None:
                        answers[channel] = (ts, record.id)
            await asyncio.sleep(0.2)

        # -- phase 2: reactions -----------------------------------------------------------------
        acks.clear()
        retries_before = retries
        reactions = []
        expected: dict[int, dict[str, int]] = {}
        n = 0
        for channel, (ts, answer_id) in answers.items():
            for v in range(voters):
                user = f"UVOTE{v:03d}"
                value = "+1" if (n % 3) else "-1"
                expected.setdefault(answer_id, {})[user] = 1 if value == "+1" else -1
                event = {"type": "reaction_added", "user": user, "reaction": value,
                         "item_user": BOT_USER_ID, "item": {"type": "message", "channel": channel, "ts": ts},
                         "event_ts": f"{time.time():.6f}"}
                reactions.append((n, event, f"EvR{n:06d}"))
                n += 1
        t1 = time.perf_counter()
        await asyncio.gather(*(send(i, e, eid) for i, e, eid in reactions))
        ack_seconds = time.perf_counter() - t1
        reaction_acks = list(acks)
        reaction_retries = retries - retries_before

        # Votes are recorded after the ack (lazy listeners): wait for all, then check integrity.
        def vote_state() -> tuple[int, int, int]:
            lost = wrong = dup = 0
            for answer_id, wanted in expected.items():
                votes = {v.user: v.value for v in store.votes.for_answer(answer_id)}
                lost += sum(1 for u in wanted if u not in votes)
                wrong += sum(1 for u, val in wanted.items() if u in votes and votes[u] != val)
                history = store.votes.history(answer_id)
                dup += max(0, len(history) - len(wanted))
            return lost, wrong, dup

        while True:
            lost_votes, wrong_votes, dup_votes = await asyncio.to_thread(vote_state)
            if lost_votes == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        vote_seconds = time.perf_counter() - t1

    return {
        "mentions": len(mentions), "mention_retries": retries_before,
        "answers_posted": len(per_channel), "answers_lost": lost_answers, "answers_duplicated": duplicates,
        "mention_ack_p50_ms": 1000 * pct(mention_acks, 0.5), "mention_ack_p99_ms": 1000 * pct(mention_acks, 0.99),
        "answer_posted_p50_ms": 1000 * pct(answer_latency, 0.5), "answer_posted_p99_ms": 1000 * pct(answer_latency, 0.99),
        "answers_per_s": len(per_channel) / mention_seconds if mention_seconds else 0.0,
        "reactions": len(reactions), "reaction_retries": reaction_retries,
        "reaction_ack_p50_ms": 1000 * pct(reaction_acks, 0.5), "reaction_ack_p99_ms": 1000 * pct(reaction_acks, 0.99),
        "reaction_events_per_s_acked": (len(reactions) + reaction_retries) / ack_seconds if ack_seconds else 0.0,
        "votes_recorded_per_s": len(reactions) / vote_seconds if vote_seconds else 0.0,
        "votes_lost": lost_votes, "votes_wrong": wrong_votes, "votes_duplicated": dup_votes,
        "ack_mean_ms": 1000 * statistics.mean(mention_acks + reaction_acks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=120)
    parser.add_argument("--voters", type=int, default=5, help="reactions per answer")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--retry-share", type=float, default=0.2)
    args = parser.parse_args()

    from feedback.store import FeedbackStore

    queries = [json.loads(line)["text"] for line in (CORPUS / "queries.jsonl").read_text().splitlines()]
    questions = random.Random(1).sample(queries, min(args.mentions, len(queries)))
    with tempfile.TemporaryDirectory(prefix="askloop-load-") as tmp, scratch_database(PG_URL) as db_url:
        root = Path(tmp)
        chroma = ChromaServer(root / "chroma")
        stub = SlackStub().start()
        replicas: list[ServiceProcess] = []
        chroma.start()
        try:
            env = env_for(chroma.url, db_url, stub, root / "home-tools")
            for service, extra in (("migrate", []), ("ingest", [str(CORPUS / "corpus.jsonl")])):
                argv = compose_command(service)
                argv = argv[:-1] + extra if extra else argv
                done = run_askloop(*argv[1:], env=env, cwd=root, timeout=900)
                if done.returncode:
                    raise SystemExit(f"{service} failed: {done.stderr[-2000:]}")
            urls = []
            for name in ("a", "b"):
                port = free_port()
                argv = with_listen(compose_command("bot"), "127.0.0.1", port)
                replicas.append(ServiceProcess(argv, env_for(chroma.url, db_url, stub, root / f"home-{name}"),
                                               root / f"replica-{name}.log", root).start())
                urls.append(f"http://127.0.0.1:{port}")
            for url, replica in zip(urls, replicas):
                wait_http(url + "/healthz", timeout=300, process=replica.process)
            store = FeedbackStore(db_url)
            result = asyncio.run(run_load(urls, stub, questions, args.voters, args.concurrency,
                                          args.retry_share, store))
            store.close()
            for name, replica in zip("ab", replicas):
                result[f"replica_{name}_rss_mb"] = resident_mb(replica.process.pid)
        finally:
            for replica in replicas:
                replica.stop()
            stub.stop()
            chroma.stop()
    print(f"load on 2 replicas (concurrency {args.concurrency}, {args.retry_share:.0%} of events "
          f"also delivered again to the other replica), {os.cpu_count()} CPU(s), "
          f"machine load average {os.getloadavg()[0]:.1f} at the end")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"  {key:<{width}}  {value:.1f}" if isinstance(value, float) else f"  {key:<{width}}  {value}")
    problems = result["answers_lost"] + result["answers_duplicated"] + result["votes_lost"] + \
        result["votes_duplicated"] + result["votes_wrong"]
    if problems:
        raise SystemExit(f"integrity problems: {problems}")


if __name__ == "__main__":
    main()
