"""Reading the correction and edit forms: values out of a submitted view, and the inline errors
for input that is plainly wrong (the loop re-checks everything)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.slack import blocks as kit


@dataclass(frozen=True)
class CorrectionForm:
    text: str | None
    source: str | None  # what the person chose or typed: a document id, a path, a URL
    metadata: dict[str, Any]


def _value(values: dict[str, Any], block: str, action: str) -> str | None:
    state = (values.get(block) or {}).get(action) or {}
    raw = state.get("value")
    if raw is None:
        raw = (state.get("selected_option") or {}).get("value")
    return raw.strip() or None if isinstance(raw, str) else None


def read_form(view: dict[str, Any]) -> tuple[CorrectionForm, dict[str, str]]:
    """The form's values, and inline errors by block (empty when it can be submitted)."""
    values = (view.get("state") or {}).get("values") or {}
    text = _value(values, kit.TEXT_BLOCK, kit.TEXT_INPUT)
    chosen = [v for v in (_value(values, kit.SHOWN_BLOCK, kit.SHOWN_INPUT),
                          _value(values, kit.SEARCH_BLOCK, kit.SEARCH_INPUT),
                          _value(values, kit.SOURCE_BLOCK, kit.SOURCE_INPUT)) if v]
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        metadata = {}
    form = CorrectionForm(text, chosen[0] if chosen else None, metadata if isinstance(metadata, dict) else {})
    errors: dict[str, str] = {}
    if not text and not chosen:
        errors[kit.TEXT_BLOCK] = "Write a better answer, or choose the document that answers the question."
    elif len(set(chosen)) > 1:
        errors[kit.SOURCE_BLOCK] = "Choose one source: a shown source, a searched document, or a path/URL."
    elif form.source and "://" in form.source and not form.source.startswith(("http://", "https://")):
        errors[kit.SOURCE_BLOCK] = "A source URL must start with http:// or https://."
    return form, errors
