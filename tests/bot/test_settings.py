"""Settings errors name the variable to fix; logging follows the current stderr."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from typer.testing import CliRunner

from bot.cli import app


def test_invalid_setting_is_named_in_one_line(home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKLOOP_TOP_K", "many")
    monkeypatch.setenv("ASKLOOP_ANSWER_THRESHOLD", "3")
    result = CliRunner().invoke(app, ["ask", "anything"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "ASKLOOP_TOP_K" in lines[0] and "ASKLOOP_ANSWER_THRESHOLD" in lines[0]
    assert "Traceback" not in result.output
    assert not home.exists()  # nothing was created before the refusal


def test_log_handler_writes_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.observability import configure_logging

    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging("text", "INFO")
        replaced = io.StringIO()
        monkeypatch.setattr(sys, "stderr", replaced)
        logging.getLogger("askloop.test").warning("after the swap")
        assert "after the swap" in replaced.getvalue()
    finally:
        for handler in list(root.handlers):
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])


def test_thread_modes_per_channel(home, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_SLACK_CHANNEL_MODES", " C1=mention, C2=Asker ,")
    settings = load_settings()
    assert settings.slack_channel_modes == {"C1": "mention", "C2": "asker"}
    assert (settings.thread_mode("C1"), settings.thread_mode("C2"), settings.thread_mode("C3")) == \
        ("mention", "asker", "asker")
    monkeypatch.setenv("ASKLOOP_SLACK_THREAD_MODE", "mention")
    assert load_settings().thread_mode("C3") == "mention"
    monkeypatch.setenv("ASKLOOP_EXPERT_GROUP", "")
    assert load_settings().expert_group is None
    for bad in ("C1=never", "C1"):
        monkeypatch.setenv("ASKLOOP_SLACK_CHANNEL_MODES", bad)
        result = CliRunner().invoke(app, ["ask", "anything"])
        assert result.exit_code == 1 and "slack_channel_modes" in result.output.lower()
