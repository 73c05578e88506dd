"""HTML conversion time: many paragraphs, the same text in one paragraph, and deep nesting.

A converter that is linear in the page spends the same time per paragraph and per nested div at
every size (each tag is one parser event, so many paragraphs cost more than the same words in
one; what must not grow is the time per tag). `--tree` also times the BeautifulSoup tree conversion askloop used before (each
insertion scanned its siblings), on the smaller sizes only: it is quadratic.

    .venv/bin/python benchmarks/html_bench.py [--blocks 10000 40000 100000] [--depth 1000 10000 100000] [--tree]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.html_text import html_to_markdown  # noqa: E402

TREE_MAX_BLOCKS = 20_000
TREE_MAX_DEPTH = 4_000


def tree_conversion(html: str) -> tuple[str, str]:
    """The previous conversion: parse to a tree, rewrite headings, insert line breaks, get_text."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for level in (1, 2, 3):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    for block in soup.find_all(["p", "li", "tr", "br", "div", "pre", "blockquote"]):
        block.insert_after("\n")
    text = re.sub(r"\n{3,}", "\n\n", (soup.body or soup).get_text())
    return title, "\n".join(line.strip() for line in text.splitlines()).strip()


def seconds(convert: Callable[[str], tuple[str, str]], html: str) -> float:
    start = time.perf_counter()
    convert(html)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[10_000, 40_000, 100_000])
    parser.add_argument("--depth", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--tree", action="store_true", help="also time the previous tree conversion")
    args = parser.parse_args()

    converters: list[tuple[str, Callable[[str], tuple[str, str]], int, int]] = [
        ("one pass", html_to_markdown, max(args.blocks), max(args.depth)),
    ]
    if args.tree:
        converters.append(("tree (previous)", tree_conversion, TREE_MAX_BLOCKS, TREE_MAX_DEPTH))
    for name, convert, max_blocks, max_depth in converters:
        for n in args.blocks:
            if n > max_blocks:
                continue
            blocks = "".join(f"<p>Paragraph {i} says something.</p>" for i in range(n))
            same_text = "<p>" + " ".join(f"Paragraph {i} says something." for i in range(n)) + "</p>"
            many = seconds(convert, f"<html><body>{blocks}</body></html>")
            one = seconds(convert, f"<html><body>{same_text}</body></html>")
            print(f"{name:>15}: {n:>7,} paragraphs {many:7.2f} s ({many / n * 1e6:.1f} µs a paragraph); "
                  f"the same text in one paragraph {one:5.2f} s", flush=True)
        for depth in args.depth:
            if depth > max_depth:
                continue
            took = seconds(convert, "<div>" * depth + "<p>deep</p>" + "</div>" * depth)
            print(f"{name:>15}: {depth:>7,} nested divs {took:7.2f} s "
                  f"({took / depth * 1e6:.1f} µs a div)", flush=True)


if __name__ == "__main__":
    main()
