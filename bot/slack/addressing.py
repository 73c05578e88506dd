"""Whether a message in Slack is for the bot: the turn-taking rules of a conversation.

In a thread the bot has answered, it speaks when spoken to. It answers
- any message that mentions it (unless all it says is thanks or an emoji);
- the asker's follow-up *questions* (a "?", or a question's or a request's opening words),
  in channels whose mode is `asker` (the default; `ASKLOOP_SLACK_THREAD_MODE`,
  `ASKLOOP_SLACK_CHANNEL_MODES`);
and never
- acknowledgements ("thanks, that worked!", "ok got it 👍") or messages made only of emoji;
- messages addressed to someone else: a mention of another person (or @here, @channel, a user
  group) opening or closing the message ("@Ana are you coming to lunch?", "did it work for you
  @Ana?"); a mention inside a sentence ("how do I give @Ana access?") is about that person,
  not to them;
- messages by anyone but the asker, unless they mention the bot: teammates in a thread are
  usually talking to each other (a question they ask may be for the asker);
- in a channel whose mode is `mention`, anything that does not mention the bot.
In a direct message everything is for the bot except acknowledgements and emoji.

The rules read the message as Slack sends it (mentions as `<@U…>`); they are pure functions,
so each is tested on its own. `looks_like_an_answer` is the other side: a teammate's reply that
may answer the thread's question (what the bot may offer to suggest as a correction).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

from bot.settings import ThreadMode

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_BROADCAST = re.compile(r"<!(?:here|channel|everyone|subteam\^[A-Z0-9]+)(?:\|[^>]*)?>")
_ANY_MENTION = re.compile(r"<[@!][^>]*>")
_LINK = re.compile(r"<(?:https?|mailto):[^>]*>")
_OTHER_MARKUP = re.compile(r"<#[^>]*>")
_SHORTCODE = re.compile(r":[a-z0-9_+'\-]+(?:::[a-z0-9_\-]+)?:")
_PLAIN_AT = re.compile(r"@[\w.\-]+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_EDGE_PUNCTUATION = " \t\n.,;:!?…-–—()[]\"'*_~`"

# Words that open a greeting or a reply and say nothing by themselves.
_OPENERS = {"hey", "hi", "hello", "yo", "ok", "okay", "so", "and", "but", "also", "well", "hmm", "thanks",
            "thx", "ty", "oh", "ah", "btw", "sorry", "then", "one", "more", "question"}
# Everything an acknowledgement is made of: a message made only of these (and no "?") is thanks.
_ACKNOWLEDGEMENT = {
    "thanks", "thank", "you", "u", "thx", "ty", "tysm", "tyvm", "cheers", "ta", "merci", "danke", "gracias",
    "ok", "okay", "k", "kk", "okey", "alright", "great", "perfect", "awesome", "cool", "nice", "good", "fine",
    "brilliant", "lovely", "super", "sweet", "amazing", "excellent", "fantastic", "wonderful", "neat", "got",
    "it", "that", "this", "worked", "works", "working", "work", "did", "the", "trick", "now", "makes", "sense",
    "sounds", "understood", "noted", "clear", "helps", "helped", "helpful", "useful", "much", "so", "very",
    "a", "lot", "lots", "appreciated", "appreciate", "really", "all", "again", "yes", "yep", "yeah", "yup",
    "sure", "right", "exactly", "indeed", "true", "done", "fixed", "solved", "sorted", "resolved", "nevermind",
    "nvm", "never", "mind", "np", "no", "worries", "problem", "ah", "oh", "aha", "i", "see", "lol", "haha",
    "hah", "wow", "will", "do", "try", "gonna", "for", "your", "help", "and", "just", "what", "needed",
    "wanted", "was", "looking", "bye", "ciao", "have", "day", "weekend", "man", "mate", "guys", "folks",
    "team", "bot", "askloop", "to", "know", "glad", "hear", "thumbs", "up", "ack", "roger", "gotcha", "we",
    "are", "go", "set", "there", "me", "too", "as", "well", "one", "perfectly",
}
_QUESTION_OPENERS = {
    "how", "what", "whats", "what's", "when", "where", "wheres", "where's", "why", "who", "whom", "whose",
    "which", "can", "could", "would", "will", "shall", "should", "do", "does", "did", "is", "are", "was",
    "were", "am", "may", "might", "must", "have", "has", "had", "any", "anyone", "anybody", "isn't",
    "aren't", "don't", "doesn't", "didn't", "can't", "couldn't", "won't", "wouldn't", "shouldn't",
    "hasn't", "haven't", "explain", "describe", "tell", "show", "help", "please", "pls", "plz", "need",
    "looking",
}
_REQUEST_PHRASES = ("i need", "i want to know", "i'd like to know", "i would like to know", "i'm looking for",
                    "im looking for", "i am looking for", "i wonder", "i was wondering", "is there",
                    "are there", "what about", "how about", "any idea", "any ideas", "do you know")
MIN_ANSWER_WORDS = 4


@dataclass(frozen=True)
class Verdict:
    """Whether to answer, and the rule that decided (logged, and shown in tests)."""

    answer: bool
    why: str


def mentioned_users(text: str) -> list[str]:
    """User ids mentioned in a message (`<@U…>`), in order."""
    return _MENTION.findall(text or "")


def mentions(text: str, user_id: str | None) -> bool:
    return bool(user_id) and user_id in mentioned_users(text)


def readable(text: str) -> str:
    """The message without links, channel names and emoji shortcodes, spaces collapsed:
    what the wording rules read. Mentions stay (as Slack's markup) for `addressed_to_others`."""
    text = _LINK.sub(" ", text or "")
    text = _OTHER_MARKUP.sub(" ", text)
    text = _SHORTCODE.sub(" ", text)
    text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return " ".join(text.split())


def _is_emoji_or_space(char: str) -> bool:
    category = unicodedata.category(char)
    # symbols (emoji are So), punctuation, spaces, the joiners and variation selectors of emoji
    return category[0] in {"S", "P", "Z"} or category in {"Cf", "Mn", "Me", "Cc"}


def is_emoji_only(text: str) -> bool:
    """Nothing but emoji (unicode or `:shortcode:`), punctuation and spaces."""
    rest = _SHORTCODE.sub("", text or "")
    return all(_is_emoji_or_space(c) for c in rest)


def _words(text: str) -> list[str]:
    """Lower-case words of the text, mentions and emoji left out."""
    return _WORD.findall(_ANY_MENTION.sub(" ", readable(text)).lower().replace("’", "'"))


def is_acknowledgement(text: str) -> bool:
    """Thanks, agreement or "it worked", with no question in it (at most 15 words)."""
    plain = _ANY_MENTION.sub(" ", readable(text))
    if "?" in plain:
        return False
    found = _words(text)
    return 0 < len(found) <= 15 and all(w in _ACKNOWLEDGEMENT for w in found)


def is_question(text: str) -> bool:
    """A question or a request: a "?" outside links, or opening words of one ("how…", "can…",
    "tell me…", "I need…"), after greetings and fillers ("thanks! and how…")."""
    plain = _ANY_MENTION.sub(" ", readable(text))
    if "?" in plain:
        return True
    found = _words(text)
    while len(found) > 1 and (found[0] in _OPENERS or found[:2] == ["thank", "you"]):
        found = found[2:] if found[:2] == ["thank", "you"] else found[1:]
    if not found:
        return False
    opening = " ".join(found)
    return found[0] in _QUESTION_OPENERS or opening.startswith(_REQUEST_PHRASES)


def addressed_to_others(text: str, bot_user_id: str | None) -> bool:
    """A message to someone else: @here/@channel/a user group anywhere, or a mention of another
    person opening or closing it (a typed "@name" counts too)."""
    text = text or ""
    if _BROADCAST.search(text):
        return True
    others = [u for u in mentioned_users(text) if u != bot_user_id]
    stripped = readable(text).strip(_EDGE_PUNCTUATION)
    words = stripped.split()
    while words and words[0].lower().strip(_EDGE_PUNCTUATION) in {"hey", "hi", "hello", "yo", "ok", "so", "thanks"}:
        words = words[1:]
    if not words:
        return False
    first, last = words[0].strip(_EDGE_PUNCTUATION), words[-1].strip(_EDGE_PUNCTUATION)

    def to_someone(token: str) -> bool:
        found = _MENTION.fullmatch(token)
        if found:
            return found.group(1) in others
        return bool(_PLAIN_AT.fullmatch(token))

    return to_someone(first) or to_someone(last)


def in_thread(text: str, *, speaker: str, askers: Collection[str], bot_user_id: str | None,
              mode: ThreadMode) -> Verdict:
    """Whether to answer a message in a thread the bot has answered."""
    if mentions(text, bot_user_id):
        return mentioned(text)
    if mode == "mention":
        return Verdict(False, "this channel is answered only when the bot is mentioned")
    if is_emoji_only(text):
        return Verdict(False, "only emoji")
    if addressed_to_others(text, bot_user_id):
        return Verdict(False, "addressed to someone else")
    if is_acknowledgement(text):
        return Verdict(False, "an acknowledgement")
    if speaker not in askers:
        return Verdict(False, "not the asker (others mention the bot to ask it)")
    if not is_question(text):
        return Verdict(False, "not a question")
    return Verdict(True, "the asker's follow-up question")


def mentioned(text: str) -> Verdict:
    """A message that mentions the bot: answered unless it only thanks it or is emoji."""
    if is_emoji_only(_MENTION.sub(" ", text or "")):
        return Verdict(False, "a mention with only emoji")
    if is_acknowledgement(text):
        return Verdict(False, "an acknowledgement")
    return Verdict(True, "mentions the bot")


def direct(text: str) -> Verdict:
    """A direct message: everything is for the bot but thanks and emoji."""
    if is_emoji_only(text):
        return Verdict(False, "only emoji")
    if is_acknowledgement(text):
        return Verdict(False, "an acknowledgement")
    return Verdict(True, "a direct message")


def looks_like_an_answer(text: str, bot_user_id: str | None) -> bool:
    """A reply that may answer the thread's question: some words of substance, not a question,
    not thanks, not emoji, not to the bot."""
    if mentions(text, bot_user_id) or is_emoji_only(text) or is_acknowledgement(text) or is_question(text):
        return False
    return len(_words(text)) >= MIN_ANSWER_WORDS
