"""What the bot posts, checked against the stand-in's Block Kit validator (no process, no network).

Answers from Markdown (long text, tables, code), escaping of mentions and links, invisible
characters, the size budget, the review channel's quoting of what people wrote.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from types import SimpleNamespace as NS
from typing import Any

import pytest
from markdown_it import MarkdownIt

from bot.slack import blocks as kit
from bot.slack.elements import MESSAGE_BUDGET, size
from bot.slack.text import escape, literal, neutralise, plain
from retrieval.answer import Answer
from retrieval.types import Hit
from tests.support.slack_blockkit import BLOCKS_BUDGET, check_blocks, check_view, tables
from tests.support.slack_blockkit import size as slack_size

HITS = [Hit("vpn", "Connecting to the VPN", "https://wiki.test/vpn", 0.9, "p"),
        Hit("laptop", "Laptop policy", "https://wiki.test/laptop", 0.8, "p"),
        Hit("holidays", "Holidays", "docs/holidays.md", 0.7, "p"),
        Hit("deploy", "Deploying", "https://wiki.test/deploy", 0.6, "p")]
# what a document or a chat model may hold to spoof or ping (RLO, ZWSP, ZWJ outside emoji, BOM)
SPOOF = "\u202etxt.exe\u202c ad\u200bmin \u2066x\u2069 a\u200db \ufeff"
INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff]")


def answer(text: str, *, abstained: bool = False, hits: list[Hit] | None = None) -> Answer:
    return Answer("how do I connect?", text, HITS if hits is None else hits, abstained, 3)


def post(text: str, **kwargs: Any) -> list[dict[str, Any]]:
    """The answer's blocks, asserted valid for Slack and within the budget."""
    _, blocks = kit.answer_message(answer(text), 7, question="how do I connect?", **kwargs)
    assert check_blocks(blocks) == []
    assert tables(blocks) <= 1
    assert size(blocks) <= kwargs.get("budget", MESSAGE_BUDGET)
    assert slack_size(blocks) <= BLOCKS_BUDGET
    return blocks


def markdown_text(blocks: list[dict[str, Any]]) -> str:
    return "\n\n".join(b["text"] for b in blocks if b["type"] == "markdown")


def walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in walk_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in walk_strings(v)]
    return []


# -- text hygiene ------------------------------------------------------------------------------


def test_neutralise_drops_bidi_overrides_and_zero_width_but_keeps_real_text():
    assert neutralise(SPOOF) == "txt.exe admin x ab "
    assert neutralise("line\r\nnext\rlast\x00\x07\x1b[31m\x85") == "line\nnext\nlast[31m"
    family = "👩\u200d💻 and 👨\u200d👩\u200d👧"  # emoji sequences keep their joiners
    assert neutralise(family) == family
    persian = "می\u200cخواهم"  # ZWNJ between Persian letters is spelling
    assert neutralise(persian) == persian
    assert neutralise("شالوم \u200f and עברית") == "شالوم \u200f and עברית"  # RLM is kept
    assert escape("<!here> \u202e& go") == "&lt;!here&gt; &amp; go"
    assert literal("<!here> <@U1> <#C1> a<b") == "‹!here> ‹@U1> ‹#C1> a<b"
    assert plain("\u202e<!channel>")["text"] == "‹!channel>"


# -- Markdown answers --------------------------------------------------------------------------


def test_markdown_answer_renders_as_written_in_markdown_blocks():
    text = ("## Connecting\n\n1. Install **WireGuard** [1]\n2. Import `vpn.conf`\n\n"
            "> Configuration files expire after 90 days.\n\nSee the [guide](https://wiki.test/vpn).")
    blocks = post(text)
    body = markdown_text(blocks)
    assert "## Connecting" in body and "**WireGuard**" in body and "`vpn.conf`" in body
    assert "> Configuration files" in body  # the quote marker stays a quote
    assert "[guide](https://wiki.test/vpn)" in body
    assert not any(b["type"] == "section" for b in blocks)  # no mrkdwn for document text


def test_long_answer_is_split_into_blocks_not_cut_at_3000():
    paragraphs = [f"Paragraph {i}: " + "word " * 120 for i in range(14)]  # ~8,800 characters
    blocks = post("\n\n".join(paragraphs))
    parts = [b for b in blocks if b["type"] == "markdown"]
    assert len(parts) >= 3 and all(len(b["text"]) <= 3000 for b in parts)
    body = markdown_text(blocks)
    assert all(f"Paragraph {i}:" in body for i in range(14))  # nothing lost
    assert "Shortened" not in json.dumps(blocks)


def test_escaping_inflating_text_does_not_cut_it():
    text = "&<>" * 600 + " end of the answer [1]"  # 1,800 characters that escape to 7,200
    blocks = post(text)
    assert "end of the answer" in markdown_text(blocks)  # once cut at 3,000 after escaping
    assert "Shortened" not in json.dumps(blocks)


def test_answer_beyond_the_budget_is_shortened_with_a_note():
    blocks = post("\n\n".join("word " * 200 for _ in range(40)))  # 40,000 characters
    assert "Shortened to fit" in json.dumps(blocks)
    assert any(b["type"] == "context_actions" for b in blocks)  # the buttons always stay
    assert size(blocks) <= MESSAGE_BUDGET


@pytest.mark.parametrize("budget", [11_000, 6_600, 3_960, 2_376])
def test_smaller_budgets_still_give_valid_messages(budget):
    long = "| a | b |\n|---|---|\n" + "| cell | value |\n" * 150 + "\n\n" + "text " * 3000
    blocks = post(long, budget=budget)
    assert size(blocks) <= budget
    assert any(b.get("type") == "context_actions" for b in blocks)


def test_table_becomes_a_table_block_with_alignment():
    text = ("Rates [1]:\n\n| Plan | Price | Notes |\n|:-----|------:|:-----:|\n"
            "| Basic | 10 | **none** |\n| Pro <!here> | 20 | see `x` |\n| Short row |\n\nAfter the table.")
    blocks = post(text)
    (table,) = [b for b in blocks if b["type"] == "table"]
    rows = table["rows"]
    assert len(rows) == 4 and all(len(r) == 3 for r in rows)
    assert rows[0][0]["type"] == "rich_text"  # a bold header row
    assert [c["text"] for c in rows[1]] == ["Basic", "10", "none"]
    assert rows[2][0]["text"] == "Pro ‹!here>" and rows[2][2]["text"] == "see x"
    assert rows[3][1]["text"] == " "  # a missing cell is a blank cell
    assert [s["align"] for s in table["column_settings"]] == ["left", "right", "center"]
    order = [b["type"] for b in blocks]
    assert order.index("markdown") < order.index("table") < len(order) - 1 - order[::-1].index("markdown")
    assert "|---" not in markdown_text(blocks)  # no raw pipes for the table


def test_only_one_table_block_and_big_tables_are_cut_to_slacks_limits():
    wide = "| " + " | ".join(f"c{i}" for i in range(25)) + " |\n|" + "---|" * 25 + "\n" + \
        "| " + " | ".join("v" for _ in range(25)) + " |\n"
    tall = "| n | square |\n|---|---|\n" + "".join(f"| {i} | {i * i} |\n" for i in range(150))
    blocks = post(wide + "\n\n" + tall, budget=30_000)
    (table,) = [b for b in blocks if b["type"] == "table"]
    assert len(table["rows"][0]) == 20
    assert "5 more column(s) of the table not shown" in markdown_text(blocks)
    assert "```\n| n | square |" in markdown_text(blocks)  # the second table, as written, in code
    blocks = post(tall + "\n\nAfter the table.", budget=30_000)
    (table,) = [b for b in blocks if b["type"] == "table"]
    assert len(table["rows"]) == 100 and table["rows"][-1][1]["text"] == str(98 * 98)
    assert "51 more row(s) of the table not shown" in markdown_text(blocks)
    assert "After the table." in markdown_text(blocks) and "Shortened" not in json.dumps(blocks)
    wordy = "| n | what |\n|---|---|\n" + "".join(f"| {i} | {'a longer cell ' * 4} |\n" for i in range(90))
    blocks = post(wordy)  # the usual budget: the rows that fit, then the note that it was shortened
    (table,) = [b for b in blocks if b["type"] == "table"]
    assert 10 < len(table["rows"]) < 100 and "Shortened" in json.dumps(blocks)


def test_code_blocks_stay_verbatim_and_long_ones_are_reopened_after_a_split():
    code = "```python\n" + "\n".join(f"x{i} = '<b>' & y  # <!channel>" for i in range(200)) + "\n```"
    blocks = post("Run this:\n\n" + code)
    parts = [b["text"] for b in blocks if b["type"] == "markdown"]
    fenced = [p for p in parts if "```python" in p]
    assert len(fenced) >= 2
    for part in fenced:
        assert part.count("```") == 2  # every piece is a complete fence
        assert "'<b>' & y" in part  # code is not entity-escaped
        assert "<!channel>" not in part and "‹!channel>" in part


def test_code_inside_lists_and_quotes_stays_verbatim():
    text = "1. Run:\n\n   ```sh\n   curl 'a?x=1&y=<2>' <!here>\n   ```\n2. Then <b>done</b>\n\n" \
           "> ```\n> a < b && c\n> ```"
    body = markdown_text(post(text))
    assert "   curl 'a?x=1&y=<2>' ‹!here>" in body and "> a < b && c" in body
    assert "Then &lt;b&gt;done&lt;/b&gt;" in body


def test_mentions_links_and_broadcasts_from_documents_are_neutralised():
    text = ("Page <!channel> or <!here|here> and <@U123> in <#C1|ops>, see <https://evil.test|bank> "
            "and [https://bank.test](https://evil.test) or [click](javascript:alert(1)) "
            "or ![logo](https://img.test/a.png); tell @here & @channel. <https://ok.test/?a=1&b=2> "
            "\\<!everyone\\> <div>html</div>")
    blocks = post(text)
    blob = json.dumps(blocks, ensure_ascii=False)
    for forbidden in ("<!channel>", "<!here", "<@U123>", "<#C1", "<https://evil", "javascript:",
                      "](https://evil.test)", "<!everyone", "<div>"):
        assert forbidden not in blob
    body = markdown_text(blocks)
    assert "&lt;!channel&gt;" in body and "&lt;@U123&gt;" in body
    assert "https://bank.test (https://evil.test)" in body  # the real address is visible
    assert "click" in body and "`@here` &amp; `@channel`" in body
    assert "logo (https://img.test/a.png)" in body
    assert "https://ok.test/?a=1&amp;b=2" in body
    html = MarkdownIt("commonmark").render(body)  # read as standard Markdown, as Slack does
    assert 'href="https://evil' not in html and "javascript" not in html and "<div>" not in html


def test_link_reference_definitions_cannot_turn_citations_into_links():
    text = "Use WireGuard [1].\n\n[1]: https://evil.test\n> [x]: https://evil.test/2\n> quoted [x]"
    body = markdown_text(post(text))
    assert "\\[1]: https://evil.test" in body and "> \\[x]: https://evil.test/2" in body
    html = MarkdownIt("commonmark").render(body)
    assert "href" not in html  # nothing in the text became a link


def test_invisible_characters_are_removed_everywhere_an_answer_shows_text():
    hits = [Hit("x", f"Title {SPOOF}", f"https://x.test/{SPOOF}", 0.9, "p")]
    blocks = kit.answer_message(answer(f"Body {SPOOF} [1]", hits=hits), 7,
                                question=f"Question {SPOOF}")[1]
    assert check_blocks(blocks) == []
    assert not any(INVISIBLE.search(s) for s in walk_strings(blocks))


def test_only_cited_sources_are_listed():
    blocks = post("Use WireGuard [2] and the laptop form [4]; not [9].")
    sources = [b for b in blocks if b["type"] == "context" and "Sources" in json.dumps(b)]
    (block,) = sources
    lines = [e["text"] for e in block["elements"][1:]]
    assert [line.split("]")[0] for line in lines] == ["[2", "[4"]
    assert "Laptop policy" in lines[0] and "Deploying" in lines[1]
    abstained = kit.answer_message(answer("I couldn't find it.", abstained=True), 7)[1]
    closest = [b for b in abstained if "Closest sources" in json.dumps(b)]
    assert len(closest[0]["elements"]) == 1 + kit.CLOSEST_SOURCES


def test_huge_question_and_titles_leave_room_for_the_answer():
    hits = [Hit(f"d{i}", "T<itle> " * 300, f"https://x.test/{i}?a=1&b=|>", 0.9, "p") for i in range(30)]
    cites = " ".join(f"[{i}]" for i in range(1, 31))
    text, blocks = kit.answer_message(Answer("q", "The answer. " + cites, hits, False, 3), 7,
                                      question="<!here> " * 5000)
    assert check_blocks(blocks) == [] and size(blocks) <= MESSAGE_BUDGET
    assert "The answer." in markdown_text(blocks)
    assert len(text) <= kit.NOTIFICATION_LIMIT and "<!here>" not in json.dumps(blocks)


# -- moderators' surfaces ----------------------------------------------------------------------


FAKE_VERDICT = "Fine.\n\n*Approved* by <@UMOD> on <!date^1700000000^{date_short_pretty}|today>"


def correction(**extra: Any) -> NS:
    base = {"id": 3, "user": "USUGGEST", "answer_id": 5, "text": FAKE_VERDICT + SPOOF,
            "source_ref": "https://x.test/\u202eevil", "status": "pending"}
    return NS(**(base | extra))


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    found = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and text.get("type") == "mrkdwn":
            found.append(text["text"])
        found += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return found


def test_review_post_quotes_what_people_wrote_so_it_cannot_fake_a_verdict():
    record = NS(question="how do I *deploy*?", answer_text="Old <!here> answer")
    _, blocks = kit.correction_review(correction(), record)
    assert check_blocks(blocks) == []
    assert not any("Approved" in t or "deploy" in t for t in mrkdwn_texts(blocks))
    quotes = [b for b in blocks if b["type"] == "rich_text"]
    quoted = json.dumps(quotes, ensure_ascii=False)
    assert "*Approved* by ‹@UMOD>" in quoted and "‹!date^" in quoted and "‹!here>" in quoted
    _, decided = kit.decided(blocks, "Approved", "UREAL", datetime(2026, 1, 2, tzinfo=timezone.utc),
                             note="ok *by me*")
    assert check_blocks(decided) == []
    verdicts = [t for t in mrkdwn_texts(decided) if "Approved" in t]
    assert verdicts == [("*Approved* by <@UREAL> on <!date^1767312000^{date_short_pretty} at {time}"
                         "|2026-01-02 00:00 UTC>")]
    assert not any(INVISIBLE.search(s) for s in walk_strings(decided))


def test_review_post_of_huge_texts_keeps_within_the_budget():
    big = "汉字" * 4000  # 3 bytes a character
    _, blocks = kit.correction_review(correction(text=big, source_ref=big),
                                      NS(question=big, answer_text=big))
    assert check_blocks(blocks) == [] and size(blocks) <= MESSAGE_BUDGET
    assert blocks[-1]["type"] == "actions"
    proposal = NS(id=4, status="evaluated", created_by="learner", summary=big,
                  diff={"added": [big] * 5}, evaluation={"ndcg": 0.5})
    _, blocks = kit.proposal_review(proposal)
    assert check_blocks(blocks) == [] and size(blocks) <= MESSAGE_BUDGET


def test_queue_and_home_show_suggestions_as_plain_text():
    items = [NS(id=i, kind="correction", answer_id=1, text=FAKE_VERDICT + SPOOF) for i in range(60)]
    _, blocks = kit.queue_message(items)
    assert check_blocks(blocks) == [] and size(blocks) <= MESSAGE_BUDGET
    assert "more item(s) not shown" in json.dumps(blocks[-1])
    assert not any("Approved" in t for t in mrkdwn_texts(blocks))
    versions = [NS(number=2, created_by="<!here>", created_at=None), NS(number=1, created_by="x",
                                                                        created_at=None)]
    view = kit.home_view(is_moderator=True, stats={"a": 1}, queue=items[:10], versions=versions,
                         active=2)
    assert check_view(view, "home") == []
    assert not any("Approved" in t for t in mrkdwn_texts(view["blocks"]))
    assert not any(INVISIBLE.search(s) for s in walk_strings(view))


def test_modals_are_valid_and_neutralised():
    modal = kit.correction_modal(5, f"how {SPOOF} <!here>?", {"channel": "C1"})
    assert check_view(modal, "modal") == []
    edit = kit.edit_modal(correction(text="x" * 5000 + SPOOF), {"channel": "C1", "ts": "1.2"})
    assert check_view(edit, "modal") == []
    assert not any(INVISIBLE.search(s) for s in walk_strings([modal, edit]))
