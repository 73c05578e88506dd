"""Two `askloop serve --http` replicas sharing one real Chroma server and one PostgreSQL database,
started with exactly the commands of docker/Dockerfile and docker/docker-compose.yml.

Events sent alternately to both produce one answer each; votes through both land; a retried
delivery to the other replica is not processed twice; a proposal applied through one replica is
used by the other; each serves /metrics and JSON logs; Chroma and PostgreSQL faults are survived.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.slack import blocks as kit
from tests.support.chroma_server import ChromaServer, free_port
from tests.conftest import TINY_CORPUS
from tests.support.ops import (
    ROOT,
    ServiceProcess,
    askloop_env,
    compose,
    compose_command,
    dockerfile_exec_form,
    metric_value,
    run_askloop,
    scratch_database,
    terminate_other_connections,
    wait_http,
    with_listen,
)
from tests.support.slack_stub import SlackStub
from tests.support.slack import BOT_TOKEN, SIGNING_SECRET, SlackClient, block_action, mention, message, reaction, unique, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MODERATOR = "UOPSMOD1"
REVIEW_CHANNEL = "COPSREVIEW"


@dataclass
class Replica:
    name: str
    process: ServiceProcess
    url: str
    slack: SlackClient

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text


@dataclass
class Stack:
    chroma: ChromaServer
    db_url: str
    stub: SlackStub
    env: dict[str, str]
    replicas: list[Replica]
    store: Any
    root: Path


def service_env(chroma_url: str, db_url: str, stub: SlackStub, home: Path) -> dict[str, str]:
    """The bot service's compose environment, with the compose hostnames pointed at loopback."""
    loopback = {
        "ASKLOOP_CHROMA_URL": chroma_url,
        "ASKLOOP_DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    env = askloop_env()
    for key, value in compose()["services"]["bot"]["environment"].items():
        env[key] = loopback.get(key, str(value))
    env.update(
        ASKLOOP_HOME=str(home), SLACK_API_URL=stub.url, ASKLOOP_MODERATORS=MODERATOR,
        ASKLOOP_REVIEW_CHANNEL=REVIEW_CHANNEL, ASKLOOP_SLACK_REVIEW_POLL="0",
        ASKLOOP_COLLECTION="askloop-ops",
    )
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Stack]:
    from feedback.store import FeedbackStore

    root = tmp_path_factory.mktemp("replicas")
    chroma = ChromaServer(root / "chroma")
    chroma.start()
    stub = SlackStub().start()
    replicas: list[Replica] = []
    try:
        with scratch_database(postgres_url) as db_url:
            env = service_env(chroma.url, db_url, stub, root / "home-tools")

            # compose `migrate`: the schema before any replica starts (twice: it is idempotent).
            for _ in range(2):
                done = run_askloop(*compose_command("migrate")[1:], env=env, cwd=root)
                assert done.returncode == 0, done.stderr

            # compose `ingest` (profile tools), with the knowledge folder on the host.
            knowledge = root / "knowledge"
            knowledge.mkdir()
            (knowledge / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n")
            argv = [str(knowledge) if a == "/knowledge" else a for a in compose_command("ingest")]
            done = run_askloop(*argv[1:], env=env, cwd=root, timeout=300)
            assert done.returncode == 0, done.stderr

            # compose `bot` x2 (= the Dockerfile's CMD), each with a home of its own: stateless.
            for name in ("a", "b"):
                port = free_port()
                home = root / f"home-{name}"
                argv = with_listen(compose_command("bot"), "127.0.0.1", port)
                process = ServiceProcess(argv, service_env(chroma.url, db_url, stub, home),
                                         root / f"replica-{name}.log", root).start()
                url = f"http://127.0.0.1:{port}"
                replicas.append(Replica(name, process, url, SlackClient(url)))
            for replica in replicas:
                try:
                    wait_http(replica.url + "/healthz", timeout=180, process=replica.process.process)
                except Exception as exc:
                    raise RuntimeError(f"{replica.name}: {exc}\n{replica.process.log()[-3000:]}") from exc
            store = FeedbackStore(db_url)
            yield Stack(chroma, db_url, stub, env, replicas, store, root)
            store.close()
    finally:
        for replica in replicas:
            replica.process.stop()
        stub.stop()
        chroma.stop()


def ask(stack: Stack, replica: Replica, question: str, channel: str | None = None,
        user: str | None = None) -> tuple[dict[str, Any], str, str]:
    """Mention the bot through `replica`; returns (event, event id, the answer's ts)."""
    channel = channel or unique("C")
    event = mention(question, user=user or unique("U"), channel=channel)
    response, event_id = replica.slack.event(event)
    assert response.status_code == 200
    stack.stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel
                        and c.get("thread_ts") == event["ts"])
    ts = answer_ts(stack.stub, channel, event["ts"])
    # Reactions are only possible once the message is shown; the bot links it to its answer
    # right after posting, so wait for that link as a person's reaction would.
    wait_until(lambda: stack.store.answers.for_message(channel, ts))
    return event, event_id, ts


def answer_ts(stub: SlackStub, channel: str, thread_ts: str) -> str:
    def find() -> str | None:
        for (ch, ts), posted in list(stub.messages.items()):
            if ch == channel and posted.get("thread_ts") == thread_ts:
                return ts
        return None

    return wait_until(find)


def posts_in(stub: SlackStub, channel: str) -> list[Any]:
    return stub.find("chat.postMessage", lambda c: c.get("channel") == channel)


def answer_counts(replicas: list[Replica]) -> list[tuple[float, float, float]]:
    """Per replica: answers recorded, retrievals timed, /slack/events requests timed."""
    out = []
    for replica in replicas:
        text = replica.metrics()
        out.append((metric_value(text, "askloop_answers_total", origin="slack_mention"),
                    metric_value(text, "askloop_retrieval_duration_seconds_count"),
                    metric_value(text, "askloop_request_duration_seconds_count", path="/slack/events")))
    return out


# -- the Docker commands ------------------------------------------------------------------------


def test_dockerfile_and_compose_run_the_same_commands_and_the_healthcheck_passes(stack):
    assert dockerfile_exec_form("CMD") == compose_command("bot")
    assert compose_command("migrate") == ["askloop", "db", "upgrade"]
    services = compose()["services"]
    assert services["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["bot"]["deploy"]["replicas"] == 2
    # The image's HEALTHCHECK, run as-is against a replica (its port instead of 3000).
    check = dockerfile_exec_form("HEALTHCHECK")
    replica = stack.replicas[0]
    check = [part.replace("127.0.0.1:3000", replica.url.removeprefix("http://")) for part in check]
    assert subprocess.run([str(Path(ROOT / ".venv/bin/python")) if check[0] == "python" else check[0],
                           *check[1:]], timeout=30).returncode == 0
    assert httpx.get(replica.url + "/healthz").json() == {"status": "ok"}
    # Stateless replicas: nothing written to their own data directories.
    for name in ("a", "b"):
        home = stack.root / f"home-{name}"
        assert not (home / "askloop.db").exists() and not (home / "chroma").exists()


def test_worker_service_command_starts_serves_metrics_and_stops_cleanly(stack):
    argv = compose_command("worker")
    port = free_port()
    argv[argv.index("--metrics-port") + 1] = str(port)
    worker = ServiceProcess(argv, stack.env | {"ASKLOOP_LEARN_POLL": "0.2"},
                            stack.root / "worker.log", stack.root).start()
    try:
        started = wait_until(lambda: [line for line in worker.json_lines()
                                      if line.get("message") == "worker started"], timeout=120)
        assert started[0]["logger"] == "askloop.worker" and started[0]["metrics_port"] == port
        wait_http(f"http://127.0.0.1:{port}/metrics", timeout=30, process=worker.process)
        assert "askloop_worker_runs" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-2000:]


# -- two replicas, one state --------------------------------------------------------------------


def test_events_alternating_between_replicas_get_exactly_one_answer_each(stack):
    before = answer_counts(stack.replicas)
    channels = []
    for i, question in enumerate(["how do I connect to the VPN?", "how do I submit expenses?",
                                  "when is the on-call handover?", "how do I request holidays?",
                                  "how do I get a new laptop?", "can I deploy on a Friday?"]):
        replica = stack.replicas[i % 2]
        channel = unique("C")
        channels.append(channel)
        ask(stack, replica, question, channel)
    time.sleep(0.5)  # a duplicate would have been posted by now
    assert [len(posts_in(stack.stub, c)) for c in channels] == [1] * 6
    recorded = {a.channel for a in stack.store.answers.recent(limit=500)}
    assert set(channels) <= recorded
    # Each replica answered its three: the work really was spread over both processes.
    after = answer_counts(stack.replicas)
    for (answers1, retrievals1, requests1), (answers0, retrievals0, requests0) in zip(after, before):
        assert answers1 - answers0 == 3
        assert retrievals1 - retrievals0 == 3
        assert requests1 - requests0 == 3


def test_follow_up_reaching_the_replica_that_did_not_answer_costs_no_slack_lookup(stack):
    """A answers the mention; B, with nothing cached, learns from the database that the bot
    answered the thread and answers the follow-up without calling conversations.replies."""
    a, b = stack.replicas
    channel, user = unique("C"), unique("U")
    event, _, _ = ask(stack, a, "how do I connect to the VPN?", channel, user)
    follow = message("and how do I request holidays?", user=user, channel=channel,
                     thread_ts=event["ts"])
    response, _ = b.slack.event(follow)
    assert response.status_code == 200
    stack.stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                        "Requesting holidays" in json.dumps(c.get("blocks")))
    follow_up = wait_until(lambda: [r for r in stack.store.answers.recent(limit=500)
                                    if r.channel == channel and r.origin == "slack_thread"])
    assert follow_up[0].thread_ts == event["ts"]
    assert stack.stub.find("conversations.replies", lambda c: c.get("channel") == channel) == []


def test_retried_delivery_to_the_other_replica_is_not_processed_twice(stack):
    a, b = stack.replicas
    channel, user = unique("C"), unique("U")
    event = mention("how do I connect to the VPN?", user=user, channel=channel)
    first, event_id = a.slack.event(event)
    again, _ = b.slack.event(event, event_id=event_id, retry=1)
    assert first.status_code == again.status_code == 200
    stack.stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel)
    ts = answer_ts(stack.stub, channel, event["ts"])
    wait_until(lambda: stack.store.answers.for_message(channel, ts))
    # A reaction delivered to B and retried to A: one vote event, not two.
    voter = unique("U")
    _, reaction_id = b.slack.event(reaction("+1", user=voter, channel=channel, ts=ts))
    a.slack.event(reaction("+1", user=voter, channel=channel, ts=ts), event_id=reaction_id, retry=1)
    record = wait_until(lambda: stack.store.answers.for_message(channel, ts))
    wait_until(lambda: stack.store.votes.for_answer(record.id))
    time.sleep(0.5)
    assert len(posts_in(stack.stub, channel)) == 1
    assert len(stack.store.votes.history(record.id)) == 1


def test_votes_through_both_replicas_land(stack):
    _, _, ts = ask(stack, stack.replicas[0], "how do I submit expenses?", channel := unique("C"))
    voters = [unique("U") for _ in range(6)]
    for i, voter in enumerate(voters):
        stack.replicas[i % 2].slack.event(
            reaction("+1" if i % 3 else "-1", user=voter, channel=channel, ts=ts))
    record = wait_until(lambda: stack.store.answers.for_message(channel, ts))
    votes = wait_until(lambda: (v := stack.store.votes.for_answer(record.id)) and len(v) == 6 and v)
    assert sorted((v.user, v.value) for v in votes) == sorted(
        (voter, 1 if i % 3 else -1) for i, voter in enumerate(voters))


def test_a_proposal_applied_through_one_replica_is_used_by_the_other(stack, embedder):
    from bot.services import Services
    from bot.settings import Settings
    from bot.worker import LearningWorker

    a, b = stack.replicas
    # Feedback through both replicas, then the worker builds and evaluates a proposal.
    for question in ("how do I connect to the VPN?", "vpn from home?"):
        channel = unique("C")
        _, _, ts = ask(stack, a, question, channel)
        for i in range(2):
            stack.replicas[i].slack.event(reaction("+1", user=unique("U"), channel=channel, ts=ts))
        record = wait_until(lambda: stack.store.answers.for_message(channel, ts))
        wait_until(lambda: len(stack.store.votes.for_answer(record.id)) == 2)
    services = Services(Settings(home=stack.root / "home-worker", chroma_url=stack.chroma.url,
                                 database_url=stack.db_url, collection="askloop-ops"))
    services.__dict__["embedder"] = embedder
    report = LearningWorker.from_settings(services.loop, services.settings).run_once(force=True)
    assert report.outcome == "built", report.detail
    proposal = stack.store.proposals.get(report.proposal_id)
    assert proposal.status in ("evaluated", "failing")

    # A moderator presses "Approve and apply" on the review message; replica A handles it.
    value = json.dumps({"kind": "proposal", "id": proposal.id})
    button = kit.REVIEW_APPROVE if proposal.status == "evaluated" else kit.REVIEW_OVERRIDE  # "Apply anyway"
    payload = block_action({"action_id": button, "type": "button", "value": value},
                           user=MODERATOR, channel=REVIEW_CHANNEL, message_ts="1700000000.000100")
    assert a.slack.interactive(payload).status_code == 200
    number = wait_until(lambda: stack.store.proposals.active_version_number())
    assert stack.store.proposals.get(proposal.id).status == "applied"

    # Replica B never saw the click; within its cache TTL it answers with the new version.
    ttl = float(stack.env["ASKLOOP_TUNING_CACHE_SECONDS"])
    time.sleep(ttl + 0.5)
    channel = unique("C")
    event, _, ts = ask(stack, b, "how do I connect to the VPN?", channel)
    record = wait_until(lambda: stack.store.answers.for_message(channel, ts))
    assert record.tuning_version == number
    (post,) = posts_in(stack.stub, channel)
    assert f"tuning version {number}" in json.dumps(post["blocks"])
    # Both replicas report the same active version on /metrics (read from the database).
    time.sleep(0.1)
    for replica in stack.replicas:
        wait_until(lambda r=replica: metric_value(r.metrics(), "askloop_active_tuning_version") == number,
                   timeout=30, interval=1)


def test_json_logs_carry_the_slack_event_id(stack):
    a = stack.replicas[0]
    _, event_id, _ = ask(stack, a, "how do I request holidays?")
    time.sleep(0.3)
    lines = a.process.json_lines()
    assert lines, a.process.log()[-2000:]
    assert all("ts" in line and "level" in line and "message" in line for line in lines)
    # Replica A's access line for that delivery carries Slack's event id and a request id.
    (access,) = wait_until(lambda: [line for line in a.process.json_lines()
                                    if line.get("event_id") == event_id and line["logger"] == "askloop.access"])
    assert access["status"] == 200 and access["path"] == "/slack/events" and access["request_id"]
    # The retry, delivered to B, is logged there under the same event id.
    b = stack.replicas[1]
    b.slack.event(mention("x", user="U1", channel="C1"), event_id=event_id, retry=1)
    wait_until(lambda: [line for line in b.process.json_lines() if line.get("event_id") == event_id])


# -- faults -------------------------------------------------------------------------------------


def test_chroma_outage_apologises_keeps_votes_and_recovers(stack):
    a, b = stack.replicas
    _, _, ts = ask(stack, a, "how do I get a new laptop?", channel := unique("C"))
    record = wait_until(lambda: stack.store.answers.for_message(channel, ts))
    stack.chroma.stop()
    try:
        down_channel = unique("C")
        event = mention("how do I deploy?", user=unique("U"), channel=down_channel)
        assert a.slack.event(event)[0].status_code == 200
        (post,) = stack.stub.wait_for("chat.postMessage", lambda c: c.get("channel") == down_channel)
        assert post["text"] == kit.APOLOGY  # short, polite, no traceback
        # Votes need only the database: a reaction through B lands while Chroma is down.
        voter = unique("U")
        b.slack.event(reaction("+1", user=voter, channel=channel, ts=ts))
        wait_until(lambda: [v for v in stack.store.votes.for_answer(record.id) if v.user == voter])
        health = httpx.get(b.url + "/healthz")  # alive (votes work), degraded: Chroma is down
        assert health.status_code == 200 and health.json() == {"status": "degraded"}
    finally:
        stack.chroma.start()
    # Back on the same port and path: both replicas answer again, by themselves.
    for replica in stack.replicas:
        channel = unique("C")
        ask(stack, replica, "how do I deploy to production?", channel)
        (post,) = posts_in(stack.stub, channel)
        assert "release pipeline" in json.dumps(post["blocks"])


def test_postgres_connections_dropped_both_replicas_reconnect(stack):
    killed = terminate_other_connections(stack.db_url)
    assert killed >= 2  # at least one pooled connection per replica
    for replica in stack.replicas:
        channel = unique("C")
        _, _, ts = ask(stack, replica, "how do I submit expenses?", channel)
        (post,) = posts_in(stack.stub, channel)
        assert post["text"] != kit.APOLOGY
        assert wait_until(lambda: stack.store.answers.for_message(channel, ts))
        assert httpx.get(replica.url + "/healthz").status_code == 200
