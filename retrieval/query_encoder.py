"""A query encoder tuned from feedback: the embedding model plus a small LoRA update.

Only questions go through it; stored chunk vectors stay as the base model made them, so a tuned
encoder needs no re-indexing and rolling a version back is instant. The update is low-rank
(LoRA, via `peft`): ~330k numbers for MiniLM, small enough to live in the tuning payload beside
the memories, so it is versioned, approved and reverted with them. At load time it is merged
into a private copy of the model, so a tuned question costs one ordinary forward pass.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Every linear layer of a BERT-style encoder block (attention and feed-forward), not the pooler.
LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


@dataclass(frozen=True)
class LoraShape:
    rank: int
    alpha: float
    targets: tuple[str, ...] = LORA_TARGETS


def lora_config(shape: LoraShape) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=shape.rank, lora_alpha=shape.alpha, target_modules=list(shape.targets), lora_dropout=0.0)


def with_lora(model: Any, shape: LoraShape) -> Any:
    """A deep copy of a SentenceTransformer whose transformer carries fresh LoRA layers."""
    from peft import get_peft_model

    tuned = copy.deepcopy(model)
    with warnings.catch_warnings():  # peft asks transformers about a renamed attribute
        warnings.simplefilter("ignore", FutureWarning)
        tuned[0].model = get_peft_model(tuned[0].model, lora_config(shape))
    return tuned


def lora_state(model: Any) -> dict[str, np.ndarray]:
    """The LoRA weights of a `with_lora` model, by parameter name."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model[0].model)
    return {name: tensor.detach().cpu().numpy().astype(np.float32) for name, tensor in state.items()}


class QueryEncoder:
    """The base model with a LoRA update merged in; encodes questions, one lock per instance."""

    def __init__(self, base: Any, shape: LoraShape, weights: dict[str, np.ndarray]) -> None:
        import torch
        from peft import set_peft_model_state_dict

        tuned = with_lora(base, shape)
        peft_model = tuned[0].model
        state = {name: torch.from_numpy(np.asarray(w, dtype=np.float32)) for name, w in weights.items()}
        result = set_peft_model_state_dict(peft_model, state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise ValueError(f"LoRA weights that fit no layer: {unexpected[:3]}")
        tuned[0].model = peft_model.merge_and_unload()
        tuned.eval()
        self._model = tuned
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from retrieval.embeddings import SMALL_INPUT, intra_op_threads

        threads = intra_op_threads(1) if len(texts) <= SMALL_INPUT else contextlib.nullcontext()
        with self._lock, threads:
            vectors = self._model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


_ENCODERS: "OrderedDict[str, QueryEncoder]" = OrderedDict()
_ENCODERS_LOCK = threading.Lock()
_ENCODERS_KEPT = 3  # a merged model costs ~90 MB: the live version, a candidate and one more


def cached_encoder(key: str, build: Any) -> QueryEncoder:
    """One merged model per payload (`key`), built on first use: merging takes about a second."""
    with _ENCODERS_LOCK:
        found = _ENCODERS.get(key)
        if found is not None:
            _ENCODERS.move_to_end(key)
            return found
    encoder = build()
    with _ENCODERS_LOCK:
        _ENCODERS[key] = encoder
        while len(_ENCODERS) > _ENCODERS_KEPT:
            _ENCODERS.popitem(last=False)
    return encoder
