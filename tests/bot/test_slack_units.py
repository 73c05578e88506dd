"""Slack pieces without a process: escaping, limits, question parsing, moderators, manifest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack import blocks as kit
from bot.slack.answering import question_from
from bot.slack.forms import read_form
from bot.slack.votes import reaction_value
from bot.slack.moderators import ModeratorDirectory
from bot.slack.text import escape, link, trim
from retrieval.answer import Answer
from retrieval.types import Hit
from tests.support.slack_stub import SlackStub

REPO = Path(__file__).resolve().parents[2]


def test_escape_and_link_cannot_ping_or_forge():
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert link("https://evil.test/a|<!channel>", "x") == "<https://evil.test/a%7C%3C!channel%3E|x>"
    assert link("https://x.test/?a=1&b=2", "T|<b>") == "<https://x.test/?a=1&amp;b=2|T¦&lt;b&gt;>"
    assert link("docs/vpn.md", "<VPN>") == "&lt;VPN&gt; (docs/vpn.md)"


def test_trim_never_cuts_an_entity_in_half():
    text = escape("a" * 95 + "&&&&&")
    cut = trim(text, 100)
    assert len(cut) <= 100 and cut.endswith("…")
    assert "&" not in cut.replace("&amp;", "")


def test_question_from_slack_markup():
    text = "<@UBOT> what about <!channel> &amp; <@U123|ann> in <#C1|ops> see <https://x.test|docs> &lt;b&gt;"
    assert question_from(text, "UBOT") == "what about @channel & @ann in #ops see docs (https://x.test) <b>"
    assert question_from("<@UBOT>", "UBOT") == ""


def test_reaction_values():
    assert reaction_value("+1") == reaction_value("thumbsup") == reaction_value("+1::skin-tone-4") == 1
    assert reaction_value("-1") == reaction_value("thumbsdown") == -1
    assert reaction_value("tada") is None and reaction_value("") is None


def submitted(text=None, shown=None, searched=None, typed=None, metadata=None):  # type: ignore[no-untyped-def]
    def value(v):  # type: ignore[no-untyped-def]
        return {"value": v}

    values = {kit.TEXT_BLOCK: {kit.TEXT_INPUT: value(text)},
              kit.SHOWN_BLOCK: {kit.SHOWN_INPUT: {"selected_option": {"value": shown} if shown else None}},
              kit.SEARCH_BLOCK: {kit.SEARCH_INPUT: {"selected_option": {"value": searched} if searched else None}},
              kit.SOURCE_BLOCK: {kit.SOURCE_INPUT: value(typed)}}
    return {"state": {"values": values}, "private_metadata": json.dumps(metadata or {"answer_id": 5})}


def test_correction_form_errors():
    assert kit.TEXT_BLOCK in read_form(submitted())[1]
    assert kit.SOURCE_BLOCK in read_form(submitted("x", typed="ftp://host/file"))[1]
    assert kit.SOURCE_BLOCK in read_form(submitted("x", shown="vpn", searched="laptop"))[1]  # two sources
    form, errors = read_form(submitted("better"))
    assert errors == {} and (form.text, form.source, form.metadata) == ("better", None, {"answer_id": 5})
    assert read_form(submitted(typed="https://wiki.test/page"))[0].source == "https://wiki.test/page"
    assert read_form(submitted(searched="vpn", typed="vpn"))[0].source == "vpn"  # the same one twice is fine
    assert read_form(submitted(shown="laptop"))[0].source == "laptop"


def test_answer_message_shape_and_abstention():
    hits = [Hit("vpn", "VPN", "https://wiki.test/vpn", 0.2, "p")]
    abstained = Answer("q?", "I couldn't find a good match.", hits, True, None)
    text, blocks = kit.answer_message(abstained, 5, native_feedback=False, question="q?")
    blob = json.dumps(blocks)
    assert "not confident" in blob and "Closest sources" in blob
    assert {e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]} == \
        {kit.VOTE_UP, kit.VOTE_DOWN, kit.SUGGEST}
    _, native = kit.answer_message(abstained, 5, native_feedback=True)
    assert native[-2]["type"] == "context_actions"
    assert native[-2]["elements"][0]["type"] == "feedback_buttons"
    assert kit.parse_feedback_value(native[-2]["elements"][0]["negative_button"]["value"]) == (-1, 5)
    with pytest.raises(ValueError):
        kit.parse_feedback_value("+2:5")


def test_review_queue_message_is_cut_to_fifty_blocks():
    class Item:
        def __init__(self, i: int) -> None:
            self.id, self.kind, self.status, self.summary = i, "proposal", "evaluated", "<!here> " * 10

    text, blocks = kit.queue_message([Item(i) for i in range(100)])
    assert len(blocks) <= 50 and "more item(s) not shown" in json.dumps(blocks[-1])
    assert "<!here>" not in json.dumps(blocks)


def test_moderator_group_is_read_from_slack_and_cached():
    from slack_sdk.web.async_client import AsyncWebClient

    stub = SlackStub().start()
    try:
        stub.usergroups["S1"] = ["UGROUP"]
        client = AsyncWebClient(token="xoxb-t", base_url=stub.url)
        directory = ModeratorDirectory(["ULIST"], "S1")

        async def check() -> list[bool]:
            return [await directory.is_moderator(client, u) for u in ("ULIST", "UGROUP", "UOTHER", "UGROUP")]

        assert asyncio.run(check()) == [True, True, False, True]
        assert len(stub.find("usergroups.users.list")) == 1  # cached
        assert directory.contains("UGROUP") and not directory.contains("UOTHER")
        missing = ModeratorDirectory([], "S404")
        assert asyncio.run(missing.is_moderator(client, "UGROUP")) is False
    finally:
        stub.stop()


# Web API methods the bot calls and the bot scope each needs (views.* and auth.test need none).
METHOD_SCOPES = {"chat_postMessage": "chat:write", "chat_update": "chat:write",
                 "chat_postEphemeral": "chat:write", "conversations_replies": "channels:history",
                 "usergroups_users_list": "usergroups:read", "reactions_add": "reactions:write",
                 "reactions_remove": "reactions:write", "users_info": "users:read",
                 "users_list": "users:read", "views_open": None, "views_update": None,
                 "views_push": None, "views_publish": None, "chat_getPermalink": None}
EVENT_SCOPES = {"app_mention": "app_mentions:read", "message.channels": "channels:history",
                "message.groups": "groups:history", "message.im": "im:history",
                "message.mpim": "mpim:history", "reaction_added": "reactions:read",
                "reaction_removed": "reactions:read", "app_home_opened": None}
PLANNED = {"reactions:write"}  # the 👀 reaction on a question while it is being answered


def test_manifest_matches_what_the_app_listens_to():
    manifest: dict[str, Any] = yaml.safe_load((REPO / "slack-manifest.yml").read_text())
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "reaction_added", "reaction_removed", "app_home_opened"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "reactions:read", "im:history", "commands",
            "usergroups:read", "channels:history"} <= scopes
    assert manifest["features"]["slash_commands"][0]["command"] == "/askloop"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_manifest_asks_for_no_scope_the_bot_does_not_use():
    """Least privilege: every scope is needed by a method the code calls, an event the app
    subscribes to, the slash command, or a planned feature; every method called is granted."""
    import re

    manifest: dict[str, Any] = yaml.safe_load((REPO / "slack-manifest.yml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    source = "\n".join(p.read_text() for p in (REPO / "bot").rglob("*.py"))
    called = set(re.findall(r"\bclient\.(\w+)\(", source))
    assert called <= set(METHOD_SCOPES), f"scope unknown for {called - set(METHOD_SCOPES)}"
    needed = {METHOD_SCOPES[m] for m in called} | {EVENT_SCOPES[e] for e in events} | {"commands"}
    needed.discard(None)
    assert needed <= scopes, f"missing scopes: {needed - scopes}"
    assert scopes - needed <= PLANNED, f"unused scopes: {scopes - needed - PLANNED}"
    assert "users:read" not in scopes and "reactions:write" in scopes


def test_generated_answer_posts_looking_then_updates_in_place(tiny_services):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.answering import answer_in_thread
    from bot.slack.app import make_deps

    tiny_services._chat_model = FakeListChatModel(responses=["Use WireGuard [1]. Tell <!channel> & go."])
    settings = tiny_services.settings.model_copy(update={"slack_looking_after": 0.0})  # 0: at once
    deps = make_deps(settings, tiny_services)
    stub = SlackStub().start()
    try:
        client = AsyncWebClient(token="xoxb-t", base_url=stub.url)
        asyncio.run(answer_in_thread(deps, client, channel="CLLM", thread_ts="1.5",
                                     question="how do I connect to the VPN?", user="UASK",
                                     origin="slack_mention"))
        (looking,) = stub.find("chat.postMessage")
        assert looking["thread_ts"] == "1.5" and "Looking" in looking["text"]
        (update,) = stub.find("chat.update")
        assert update["ts"] == stub.messages[("CLLM", update["ts"])]["ts"]
        assert "Use WireGuard" in update.blob() and "generated" in update.blob()
        assert "<!channel>" not in update.blob() and "&lt;!channel&gt; &amp; go" in update.blob()
        record = deps.loop.answer_for_message("CLLM", update["ts"])
        assert record is not None and record.answer_text.startswith("Use WireGuard")
    finally:
        stub.stop()


def test_extractive_answer_wears_eyes_and_posts_no_placeholder(tiny_services):
    """👀 on the question while it is answered, removed after; one message in the thread (the
    answer), however long answering takes: the placeholder is only for generated answers."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.answering import answer_in_thread
    from bot.slack.app import make_deps

    settings = tiny_services.settings.model_copy(update={"slack_looking_after": 0.0})
    deps = make_deps(settings, tiny_services)
    stub = SlackStub().start()
    try:
        client = AsyncWebClient(token="xoxb-t", base_url=stub.url)
        asyncio.run(answer_in_thread(deps, client, channel="CEYES", thread_ts="2.5", question_ts="2.5",
                                     question="how do I connect to the VPN?", user="UASK", origin="slack_mention"))
        (posted,) = stub.find("chat.postMessage")
        assert "WireGuard" in posted.blob() and not stub.find("chat.update")
        (added,), (removed,) = stub.find("reactions.add"), stub.find("reactions.remove")
        assert (added["timestamp"], added["name"]) == (removed["timestamp"], removed["name"]) == ("2.5", "eyes")
        methods = [c.method for c in stub.calls]
        assert methods.index("chat.postMessage") < methods.index("reactions.remove")  # removed once answered
    finally:
        stub.stop()


def other_replica(deps: Any) -> Any:
    """The same bot as another process would run it: its own wiring and engine, nothing cached."""
    from bot.services import Services
    from bot.slack.deps import BotDeps

    services = Services(deps.settings)
    return BotDeps(settings=deps.settings, services=services, loop=services.loop, moderators=deps.moderators)


def test_follow_up_thread_is_recognised_from_the_store_then_from_slack(tiny_services, caplog):
    """Cache, then the feedback store (threads any replica answered), then conversations.replies."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.answering import answer_in_thread, bot_in_thread
    from bot.slack.app import make_deps
    from tests.support.slack_stub import BOT_ID, BOT_USER_ID

    first = make_deps(tiny_services.settings, tiny_services)
    second = other_replica(first)
    stub = SlackStub().start()
    try:
        client = AsyncWebClient(token="xoxb-t", base_url=stub.url)

        def in_thread(deps: Any, channel: str, thread_ts: str) -> bool:
            return asyncio.run(bot_in_thread(deps, client, channel, thread_ts, BOT_USER_ID, BOT_ID))

        def replies(channel: str) -> int:
            return len(stub.find("conversations.replies", lambda c: c.get("channel") == channel))

        asyncio.run(answer_in_thread(first, client, channel="CANSWERED", thread_ts="10.000001",
                                     question="how do I connect to the VPN?", user="UASK",
                                     origin="slack_mention"))
        # the replica that did not answer knows from the store, and then from its own cache
        assert in_thread(second, "CANSWERED", "10.000001") is True
        assert "CANSWERED:10.000001" in second.answered_threads
        assert in_thread(second, "CANSWERED", "10.000001") is True
        assert replies("CANSWERED") == 0

        # a bot message the store knows nothing of (a notice, or an answer never linked): Slack says
        asyncio.run(client.chat_postMessage(channel="CNOTICE", thread_ts="20.000001", text="notice"))
        assert in_thread(second, "CNOTICE", "20.000001") is True
        assert replies("CNOTICE") == 1
        # a thread without the bot: neither the store nor Slack claims it
        assert in_thread(second, "CNOBOT", "30.000001") is False
        assert replies("CNOBOT") == 1

        # the store cannot be read: logged, and Slack is asked instead
        from sqlalchemy.exc import OperationalError

        def broken(channel: str, thread_ts: str) -> bool:
            raise OperationalError("SELECT", {}, Exception("database is down"))

        third = other_replica(first)
        third.loop.answered_in_thread = broken  # type: ignore[method-assign]
        with caplog.at_level("ERROR", logger="askloop.slack"):
            assert in_thread(third, "CANSWERED", "10.000001") is True
        assert replies("CANSWERED") == 1
        assert "asking Slack" in caplog.text
        for deps in (second, third):
            deps.loop.close()
    finally:
        stub.stop()


def test_serve_refuses_clearly_without_tokens(home, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1 and "SLACK_BOT_TOKEN is not set" in result.output
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    result = runner.invoke(app, ["serve", "--http"])
    assert result.exit_code == 1 and "SLACK_SIGNING_SECRET is not set" in result.output
