"""The tuning payload's schema, shared by its writer (`feedback.learning`) and its reader
(`retrieval.learned`, `retrieval.tuning_payload`): the format number, the kinds, how matrices
are stored in JSON, and the memory parameters every askloop payload carries.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

PAYLOAD_FORMAT = 1
KIND_ASKLOOP = "askloop"
KIND_DOC_BOOST = "doc-boost"
PASSAGE_PREFIX = "correction:"


class PayloadError(ValueError):
    """A tuning payload that cannot be decoded (wrong kind, format, shapes)."""


# -- compact vectors in JSON ----------------------------------------------------------------------
def encode_matrix(matrix: np.ndarray, dtype: str = "float16") -> dict[str, Any]:
    """A matrix as base64 of its raw bytes: ~4x smaller than JSON numbers, exact to float16."""
    array = np.ascontiguousarray(np.asarray(matrix, dtype=dtype))
    return {
        "dtype": dtype,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def decode_matrix(blob: dict[str, Any]) -> np.ndarray:
    try:
        raw = base64.b64decode(blob["data"])
        array = np.frombuffer(raw, dtype=np.dtype(blob["dtype"])).reshape(blob["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"malformed vector block in tuning payload: {exc}") from exc
    return array.astype(np.float32)


# -- the parameters every learned tuning carries (visible in each proposal) -------------------------
@dataclass(frozen=True)
class MemoryParams:
    """How strongly, and for which questions, a memory moves a document.

    kernel(s) = max(0, (s - tau) / (1 - tau)) ** power for the cosine s between the new question
    and the remembered one, both first centred on the remembered questions' mean (questions to
    one team share a topic, which pushes all their raw cosines up; centring removes it).
    A document's summed adjustment a becomes cap * tanh(scale * a / cap) spread units, where
    `spread` is the standard deviation of the candidates' base scores (at least `min_spread`).
    👎 memories use the stricter `tau_negative`: a rejection only repeats for near-repeats.
    These defaults are the safe starting point; the learning engine may move the reach, the
    title margin and the strength within fixed bounds when the team's own feedback shows, on
    held-out phrasings, that another setting ranks better (`feedback.calibration`). The values
    in force are recorded in every payload.
    """

    tau: float = 0.45
    tau_negative: float = 0.7  # 👎 memories: only for near-repeats of the question
    tau_vote: float = 0.65  # 👍 memories: a confirmation generalises less far than a correction
    power: float = 2.5
    cap: float = 3.0
    scale: float = 3.0
    min_spread: float = 0.02
    candidate_threshold: float = 0.3  # kernel above which a corrected document joins the candidates
    max_extra: int = 5
    # An approved correction is served first for a near-repeat of its question (raw cosine at or
    # above this), like an annotation reply: a spread-bounded boost cannot lift a source the
    # model scores far below the rest, and a moderator-approved fix must show for its question.
    pin_similarity: float = 0.9
    # A memory counts for a question (and gives the tuned encoder reach to it) only while the
    # remembered question describes it at least as well (raw cosine, less this margin) as the
    # title of every other document does; 2 turns the rule off. See `LearnedTuning.explained`.
    title_margin: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "MemoryParams":
        data = data or {}
        fields = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in fields:
                values[key] = int(value) if key == "max_extra" else float(value)
        return cls(**values)


# Per-question products that depend only on the memories and titles, never on `MemoryParams`.
