"""What a score means to a person: a bounded confidence instead of a raw number.

A hit's score starts as a cosine similarity, gains a keyword bonus, and learning may add to it
(approved corrections and votes move documents in units of the candidates' spread), so after
learning a score can exceed 1 and is no longer a cosine. People read "score 1.34" as nonsense.
The confidence squashes the score around the answer threshold, the one number that already
means something (below it the bot says it found no good match):

    confidence = 1 / (1 + exp(-(score - threshold) / SCALE))

50% is exactly the threshold; 0.1 above it is 73%, 0.2 above 88%, 0.3 above 95%, and 0.1 below it
27%. It orders hits exactly as their scores do, and is shown between 1% and 99% (never "certain"
either way). It is not a probability that the answer is right: it says how clearly a source
cleared the bar the bot answers by.
"""

from __future__ import annotations

import math

SCALE = 0.1  # score distance from the threshold that moves the confidence from 50% to 73%


def confidence(score: float, threshold: float) -> float:
    """The score as a number between 0 and 1, 0.5 at the answer threshold."""
    z = (float(score) - float(threshold)) / SCALE
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def confidence_label(score: float, threshold: float) -> str:
    """`87%`: whole percent, shown between 1% and 99% (never certain either way)."""
    return f"{min(99, max(1, round(100 * confidence(score, threshold))))}%"


__all__ = ["SCALE", "confidence", "confidence_label"]
