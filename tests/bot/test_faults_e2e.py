"""A real `askloop serve --http` on a real Chroma server and PostgreSQL behind the fault proxy:
/healthz stays within 2 s and says only ok/degraded through a database stall and cut and a
kill -9 of Chroma, and the bot survives its own kill -9 (a new process serves the same data).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.chroma_server import ChromaServer
from tests.conftest import TINY_CORPUS
from tests.support.faults import FaultProxy, kill_bot, kill_chroma
from tests.support.ops import scratch_database
from tests.support.slack_stub import SlackStub
from tests.support.slack import BotProcess, prepare_home

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, embedder: Any, postgres_url: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("faults-e2e")
    chroma = ChromaServer(root / "chroma")
    chroma.start()
    stub = SlackStub().start()
    with scratch_database(postgres_url) as url:
        proxy = FaultProxy.for_url(url)
        proxied = proxy.route(url)
        corpus = root / "corpus.jsonl"
        corpus.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n")
        home = root / "home"
        prepare_home(home, corpus, embedder, {"database_url": proxied, "chroma_url": chroma.url})
        env = {"ASKLOOP_DATABASE_URL": proxied, "ASKLOOP_CHROMA_URL": chroma.url,
               "ASKLOOP_SLACK_REVIEW_POLL": "0"}
        bot = BotProcess(home, stub, env=env).start()
        state = {"bot": bot, "proxy": proxy, "chroma": chroma, "home": home, "stub": stub, "env": env}
        try:
            yield state
        finally:
            state["bot"].stop()
            proxy.close()
            stub.stop()
            chroma.stop()


def health(bot: BotProcess) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    response = httpx.get(bot.url + "/healthz", timeout=10)
    return response.status_code, response.json(), time.monotonic() - start


def eventually_ok(bot: BotProcess, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while health(bot)[:2] != (200, {"status": "ok"}):
        assert time.monotonic() < deadline, f"/healthz did not return to ok: {bot.log()[-2000:]}"
        time.sleep(0.3)


def test_healthz_within_2s_through_a_database_stall_and_cut(stack):
    bot, proxy = stack["bot"], stack["proxy"]
    eventually_ok(bot)
    for fault in (proxy.stall, proxy.cut):
        fault()
        try:
            for _ in range(3):
                status, body, seconds = health(bot)
                assert (status, body) == (503, {"status": "degraded"}), (status, body)
                assert seconds < 2.0, seconds
        finally:
            proxy.passing()
        eventually_ok(bot)
    assert "health: degraded (database" in bot.log()  # the details went to the log


def test_healthz_degraded_but_serving_while_chroma_is_killed(stack):
    bot, chroma = stack["bot"], stack["chroma"]
    eventually_ok(bot)
    kill_chroma(chroma)
    try:
        status, body, seconds = health(bot)
        assert (status, body) == (200, {"status": "degraded"}) and seconds < 2.0
    finally:
        chroma.start()
    eventually_ok(bot)


def test_a_bot_killed_with_sigkill_is_replaced_by_a_new_process(stack):
    bot = stack["bot"]
    kill_bot(bot)
    assert bot.process.returncode == -9
    with pytest.raises(httpx.HTTPError):
        httpx.get(bot.url + "/healthz", timeout=2)
    stack["bot"] = BotProcess(stack["home"], stack["stub"], env=stack["env"]).start()
    eventually_ok(stack["bot"])
