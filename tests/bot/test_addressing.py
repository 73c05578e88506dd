"""The turn-taking rules: which messages in a thread, a mention or a DM the bot answers."""

from __future__ import annotations

import pytest

from bot.slack import addressing as a

BOT, ASKER, ANA = "UBOT", "UASKER", "UANA"


def thread(text: str, speaker: str = ASKER, mode: str = "asker") -> a.Verdict:
    return a.in_thread(text, speaker=speaker, askers={ASKER}, bot_user_id=BOT, mode=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    "how long is it valid?", "and on my phone?", "what about meals", "thanks! and how do I renew it?",
    "can I use it on Linux", "Is the wiki behind the VPN too?", "one more question: where is the portal",
    "tell me how to renew the file", "I need the config for my phone", "ok so where do I download it",
    "hmm, any idea why it says expired?",
])
def test_the_askers_follow_up_questions_are_answered(text):
    verdict = thread(text)
    assert verdict.answer, verdict.why


@pytest.mark.parametrize("text, why", [
    ("thanks, that worked!", "an acknowledgement"),
    ("Thank you so much 🙏", "an acknowledgement"),
    ("ok got it :+1:", "an acknowledgement"),
    ("perfect, makes sense now", "an acknowledgement"),
    ("👍", "only emoji"),
    (":tada: :tada:", "only emoji"),
    ("🙏🏽!!", "only emoji"),
    ("<@UANA> are you coming to lunch?", "addressed to someone else"),
    ("hey <@UANA|ana> how long is yours valid?", "addressed to someone else"),
    ("did it work for you <@UANA>?", "addressed to someone else"),
    ("<!here> anyone else seeing this?", "addressed to someone else"),
    ("@ana are you coming to lunch?", "addressed to someone else"),
    ("<!subteam^S0IT> is the portal down?", "addressed to someone else"),
    ("I tried that and it still fails", "not a question"),
    ("the portal is down again", "not a question"),
])
def test_chatter_and_messages_to_others_are_not_answered(text, why):
    verdict = thread(text)
    assert not verdict.answer and verdict.why == why


def test_a_mention_inside_a_sentence_is_about_someone_not_to_them():
    assert thread("how do I give <@UANA> access to the VPN?").answer
    assert not a.addressed_to_others("how do I give <@UANA> access to the VPN?", BOT)


def test_others_are_answered_only_when_they_mention_the_bot():
    assert thread("how long is it valid?", speaker=ANA).why == "not the asker (others mention the bot to ask it)"
    assert thread("<@UBOT> how long is it valid?", speaker=ANA).answer
    # a question for the asker, by a teammate, is theirs to answer
    assert not thread("which client did you install?", speaker=ANA).answer


def test_mention_only_channels_answer_only_mentions():
    assert thread("how long is it valid?", mode="mention").why == "this channel is answered only when the bot is mentioned"
    assert thread("<@UBOT> how long is it valid?", mode="mention").answer


def test_mentions_and_direct_messages_that_only_thank_are_not_answered():
    assert a.mentioned("<@UBOT> how do I connect to the VPN?").answer
    assert not a.mentioned("thanks <@UBOT>!").answer
    assert not a.mentioned("<@UBOT> 🙏").answer
    assert a.direct("my VPN config expired").answer  # in a DM a statement is for the bot too
    assert not a.direct("thx!").answer and not a.direct("👍").answer


def test_question_marks_in_links_do_not_make_a_question():
    assert not a.is_question("see <https://wiki.test/page?id=3|this page> for the steps")
    assert a.is_question("is <https://wiki.test/page?id=3|this page> still right?")


@pytest.mark.parametrize("text, expected", [
    ("Download a new file from the IT portal, the old one expires after 90 days", True),
    ("<@UASKER> you need the WireGuard app, then scan the QR code", True),
    ("thanks!", False),
    ("which client did you use?", False),
    ("no idea", False),
    ("<@UBOT> the file expires after 90 days", False),  # to the bot: a question or a mention
    ("🎉🎉", False),
])
def test_what_reads_like_an_answer(text, expected):
    assert a.looks_like_an_answer(text, BOT) is expected
