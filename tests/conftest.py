"""Fixtures every test module may use: an isolated data dir, the real model, a small corpus.

The embedding model is loaded once per test session (it takes seconds; encoding takes
milliseconds). Each test gets its own ASKLOOP_HOME so no test sees another's data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures shared by every folder: feedback stores on SQLite and PostgreSQL, a `chroma run` server.
pytest_plugins = ["tests.support.feedback", "tests.support.chroma_server"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PG_URL = os.environ.get(
    "ASKLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The public evaluation sets (docs/evaluation-data.md): ASKLOOP_EVAL_DATA, else ../shared/data.
SHARED_DATA = Path(os.environ.get("ASKLOOP_EVAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

TINY_CORPUS = [
    {"_id": "vpn", "title": "Connecting to the VPN", "text": "Install the WireGuard client, import the profile from the IT portal and connect before opening internal sites. The VPN is required for the wiki and the build servers."},
    {"_id": "expenses", "title": "Submitting expenses", "text": "Expenses are submitted in the finance tool within 30 days. Attach a photo of every receipt; meals above 50 euros need a manager's approval."},
    {"_id": "holidays", "title": "Requesting holidays", "text": "Request holidays in the HR portal at least two weeks ahead. Your manager approves them; the team calendar updates automatically."},
    {"_id": "oncall", "title": "On-call rotation", "text": "The on-call engineer carries the pager for one week, from Monday 10:00. Hand over open incidents in the #ops channel at the end of the week."},
    {"_id": "laptop", "title": "Getting a new laptop", "text": "Laptops are replaced every three years. Open a ticket with IT; old laptops must be wiped and returned within two weeks of receiving the new one."},
    {"_id": "deploy", "title": "Deploying to production", "text": "Deploys go through the release pipeline after two approvals. Never deploy on Fridays after 15:00; roll back with the pipeline's rollback button."},
]


@pytest.fixture(scope="session")
def embedder():
    """The embedder the bot uses by default (the same object `Services` gets)."""
    from bot.settings import Settings, default_model_cache
    from retrieval.embeddings import shared_embedder

    return shared_embedder(None, Settings.model_fields["embedding_backend"].default, default_model_cache())


@pytest.fixture(scope="session")
def int8(embedder):
    """The int8 ONNX backend, from the same export folder as the default one."""
    from retrieval.embeddings import shared_embedder

    return shared_embedder(None, "onnx-int8", embedder.cache_root)


@pytest.fixture(scope="session")
def torch_embedder():
    """The model on torch: the reference the ONNX backends are checked against."""
    from retrieval.embeddings import shared_embedder

    return shared_embedder(None, "torch")


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ASKLOOP_HOME for this test, with no stray settings from the environment."""
    data = tmp_path / "home"
    for name in list(os.environ):
        if name.startswith("ASKLOOP_") or name.startswith("SLACK_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASKLOOP_HOME", str(data))
    monkeypatch.chdir(tmp_path)  # so no developer's .env is read
    return data


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny" / "corpus.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def settings(home: Path):
    from bot.settings import load_settings

    return load_settings()


@pytest.fixture()
def services(settings, embedder):
    from bot.services import Services

    return Services(settings)


@pytest.fixture()
def tiny_services(services, tiny_corpus):
    """Services over the tiny corpus, already ingested."""
    services.ingestor.run([tiny_corpus])
    return services


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    try:
        import psycopg

        dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except Exception as exc:  # no server, no driver, wrong credentials
        return f"PostgreSQL at {PG_URL} is not reachable ({exc.__class__.__name__})"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    yield PG_URL
