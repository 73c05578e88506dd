"""Slack's Block Kit rules, as the Web API stand-in (tests/slack_stub.py) enforces them.

Every block and element is parsed with slack_sdk's models (`slack_sdk.models.blocks`,
`slack_sdk.models.views`) and run through their validators, which carry the documented
per-field limits. The models are lenient where Slack is not, so the rules they leave out are
checked here, in one place: unknown types and properties, which elements each block takes,
text objects (plain_text where Slack demands it, 1 to 3,000 characters), duplicate block and
action ids, and the shapes of blocks whose models validate little or nothing (`markdown`:
12,000 characters over all of a message's markdown blocks; `table`: at most 100 rows of at
most 20 `raw_text` or `rich_text` cells, one table per message; `rich_text`; `context_actions`
with `feedback_buttons`).

Problems are reported the way Slack reports them: `message [json-pointer:/blocks/N/...]`.
This module is long because it is one table of rules; splitting it would scatter them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, BlockElement
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
TEXT_LIMIT = 3000
MESSAGE_TEXT_LIMIT = 40_000
MARKDOWN_TOTAL = 12_000
TABLE_ROWS = 100
TABLE_CELLS = 20
# Slack answers msg_blocks_too_long above an undocumented total: reports put it near 13,200
# characters of markdown text and saw it at 11,341 characters of text in rich_text, section and
# header blocks. Measuring the UTF-8 bytes of the compact JSON (always more than the text it
# holds) against 12,000 is stricter than every report.
BLOCKS_BUDGET = 12_000

INTERACTIVE = {"button", "checkboxes", "datepicker", "datetimepicker", "overflow", "radio_buttons",
               "timepicker", "workflow_button", "static_select", "external_select", "users_select",
               "conversations_select", "channels_select", "multi_static_select",
               "multi_external_select", "multi_users_select", "multi_conversations_select",
               "multi_channels_select"}
INPUTS = (INTERACTIVE - {"button", "overflow", "workflow_button"}) | {
    "plain_text_input", "email_text_input", "url_text_input", "number_input", "file_input",
    "rich_text_input"}
ALLOWED_ELEMENTS = {
    "actions": INTERACTIVE,
    "context": {"image", "plain_text", "mrkdwn"},
    "context_actions": {"feedback_buttons", "icon_button"},
}
ACCESSORIES = (INTERACTIVE - {"datetimepicker"}) | {"image"}
MESSAGE_ONLY = {"markdown", "table"}
RICH_TEXT_PARTS = {"rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote"}
RICH_TEXT_LEAVES = {"text": {"text"}, "link": {"url"}, "emoji": {"name"}, "user": {"user_id"},
                    "usergroup": {"usergroup_id"}, "channel": {"channel_id"}, "team": {"team_id"},
                    "broadcast": {"range"}, "date": {"timestamp", "format"}, "color": {"value"}}
RICH_TEXT_OPTIONAL = {"style", "text", "unsafe", "skin_tone", "unicode", "url", "fallback"}
STYLES = {"bold", "italic", "strike", "code", "underline", "highlight", "client_highlight", "unlink"}
_SDK_LIMIT = re.compile(r"^(\w+) (?:attribute )?cannot exceed (\d+) (characters|elements|items)")
_MISSING = re.compile(r"'(\w+)'")


class Problems:
    """Slack-style error messages collected while walking a payload."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str, pointer: str) -> None:
        entry = f"{message} [json-pointer:{pointer}]"
        if entry not in self.messages:  # a model's validator and a rule here may agree
            self.messages.append(entry)


def size(blocks: Any) -> int:
    """The measure BLOCKS_BUDGET applies to: UTF-8 bytes of the compact JSON."""
    return len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")).encode())


# -- text objects and slack_sdk models ---------------------------------------------------------


def check_text(obj: Any, pointer: str, problems: Problems, *, plain_only: bool = False,
               limit: int = TEXT_LIMIT) -> None:
    if not isinstance(obj, dict):
        problems.add("must be an object", pointer)
        return
    kind = obj.get("type")
    if kind not in {"plain_text", "mrkdwn"}:
        problems.add(f"unsupported type: {kind}", pointer + "/type")
        return
    if plain_only and kind != "plain_text":
        problems.add("must be of type plain_text", pointer + "/type")
    allowed = {"type", "text", "emoji" if kind == "plain_text" else "verbatim"}
    for key in sorted(set(obj) - allowed):
        problems.add(f"unsupported property: {key}", f"{pointer}/{key}")
    text = obj.get("text")
    if not isinstance(text, str):
        problems.add("must be a string", pointer + "/text")
    elif not text:
        problems.add("must be more than 0 characters", pointer + "/text")
    elif len(text) > limit:
        problems.add(f"must be less than {limit + 1} characters", pointer + "/text")


def _validators(model: Any) -> list[Callable[[], None]]:
    found = []
    for name in dir(model):
        if name.startswith("__"):
            continue
        member = getattr(model, name, None)
        if callable(member) and getattr(member, "validator", False):
            found.append(member)
    return found


def check_model(parse: Callable[[dict[str, Any]], Any], data: dict[str, Any], pointer: str,
                problems: Problems) -> Any:
    """Parse `data` with a slack_sdk model and run every validator of the model.

    Returns the model (None when it cannot be built). Properties the model does not know are
    reported (Slack refuses them; the models only log and drop them).
    """
    try:
        model = parse(dict(data))
    except TypeError as exc:  # a required argument missing, or one the model does not take
        what = "unsupported property" if "unexpected" in str(exc) else "missing required field"
        for name in _MISSING.findall(str(exc)) or ["?"]:
            problems.add(f"{what}: {name}", f"{pointer}/{name}")
        return None
    except SlackObjectFormationError as exc:
        problems.add(str(exc), pointer)
        return None
    except Exception as exc:  # a value of the wrong kind makes the model itself fail
        problems.add(f"failed to match all allowed schemas ({exc.__class__.__name__})", pointer)
        return None
    if model is None:
        problems.add(f"unsupported type: {data.get('type')}", pointer + "/type")
        return None
    attributes = set(model.attributes) | {"type"}
    for key in sorted(set(data) - attributes):
        problems.add(f"unsupported property: {key}", f"{pointer}/{key}")
    for validator in _validators(model):
        try:
            validator()
        except SlackObjectFormationError as exc:
            problems.add(*_slack_message(str(exc), data, pointer))
        except Exception as exc:  # a validator tripping over a value of the wrong kind
            problems.add(f"failed to match all allowed schemas ({exc.__class__.__name__})", pointer)
    return model


def _slack_message(message: str, data: dict[str, Any], pointer: str) -> tuple[str, str]:
    """A slack_sdk validator message as Slack words it, pointing at the field."""
    match = _SDK_LIMIT.match(message)
    if not match:
        return message, pointer
    name, limit, unit = match.groups()
    field = f"{pointer}/{name}"
    if isinstance(data.get(name), dict) and "text" in data[name]:
        field += "/text"
    if unit == "characters":
        return f"must be less than {int(limit) + 1} characters", field
    return f"must be less than {int(limit) + 1} items", field


# -- elements ----------------------------------------------------------------------------------


def _confirm(data: Any, pointer: str, problems: Problems) -> None:
    if not isinstance(data, dict):
        problems.add("must be an object", pointer)
        return
    for key in sorted(set(data) - {"title", "text", "confirm", "deny", "style"}):
        problems.add(f"unsupported property: {key}", f"{pointer}/{key}")
    for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
        if key in data:
            check_text(data[key], f"{pointer}/{key}", problems, plain_only=key != "text", limit=limit)
        else:
            problems.add(f"missing required field: {key}", f"{pointer}/{key}")


def _feedback_button(data: Any, pointer: str, problems: Problems) -> None:
    if not isinstance(data, dict):
        problems.add("must be an object", pointer)
        return
    for key in sorted(set(data) - {"text", "value", "accessibility_label"}):
        problems.add(f"unsupported property: {key}", f"{pointer}/{key}")
    check_text(data.get("text"), pointer + "/text", problems, plain_only=True, limit=75)
    value = data.get("value")
    if not isinstance(value, str) or not value:
        problems.add("missing required field: value", pointer + "/value")
    elif len(value) > 2000:
        problems.add("must be less than 2001 characters", pointer + "/value")
    label = data.get("accessibility_label")
    if label is not None and (not isinstance(label, str) or len(label) > 75):
        problems.add("must be less than 76 characters", pointer + "/accessibility_label")


def check_element(data: Any, pointer: str, problems: Problems, allowed: set[str]) -> str | None:
    """One element (or a text object where the block takes one); returns its action_id."""
    if not isinstance(data, dict):
        problems.add("must be an object", pointer)
        return None
    kind = data.get("type")
    if kind not in allowed:
        problems.add(f"unsupported type: {kind}", pointer + "/type")
        return None
    if kind in {"plain_text", "mrkdwn"}:
        check_text(data, pointer, problems)
        return None
    check_model(BlockElement.parse, data, pointer, problems)
    if kind == "button":
        check_text(data.get("text"), pointer + "/text", problems, plain_only=True, limit=75)
        if data.get("style") not in {None, "primary", "danger"}:
            problems.add("must be one of: primary, danger", pointer + "/style")
    if kind == "feedback_buttons":
        for side in ("positive_button", "negative_button"):
            _feedback_button(data.get(side), f"{pointer}/{side}", problems)
    if kind == "plain_text_input":
        if "placeholder" in data:
            check_text(data["placeholder"], pointer + "/placeholder", problems, plain_only=True,
                       limit=150)
        most = data.get("max_length", TEXT_LIMIT)
        if not isinstance(most, int) or not 1 <= most <= TEXT_LIMIT:
            problems.add(f"must be between 1 and {TEXT_LIMIT}", pointer + "/max_length")
        elif len(str(data.get("initial_value", ""))) > most:
            problems.add(f"must be less than {most + 1} characters", pointer + "/initial_value")
    if "confirm" in data:
        _confirm(data["confirm"], pointer + "/confirm", problems)
    action_id = data.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or not action_id):
        problems.add("must be a non-empty string", pointer + "/action_id")
    return action_id if isinstance(action_id, str) else None


def _elements(block: dict[str, Any], pointer: str, problems: Problems, allowed: set[str],
              most: int) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        problems.add("must provide at least 1 item", pointer + "/elements")
        return
    if len(elements) > most:
        problems.add(f"must be less than {most + 1} items", pointer + "/elements")
    seen: set[str] = set()
    for i, element in enumerate(elements):
        action_id = check_element(element, f"{pointer}/elements/{i}", problems, allowed)
        if action_id in seen:
            problems.add(f"duplicate action_id: {action_id}", f"{pointer}/elements/{i}/action_id")
        if action_id:
            seen.add(action_id)


# -- rich_text and table -----------------------------------------------------------------------


def check_rich_text(block: dict[str, Any], pointer: str, problems: Problems) -> None:
    parts = block.get("elements")
    if not isinstance(parts, list):
        problems.add("missing required field: elements", pointer + "/elements")
        return
    for i, part in enumerate(parts):
        here = f"{pointer}/elements/{i}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in RICH_TEXT_PARTS:
            problems.add(f"unsupported type: {kind}", here + "/type")
            continue
        if kind == "rich_text_list":
            if part.get("style") not in {"bullet", "ordered"}:
                problems.add("must be one of: bullet, ordered", here + "/style")
            for j, item in enumerate(part.get("elements") or []):
                check_rich_text({"elements": [item]}, f"{here}/elements/{j}", problems)
            continue
        known = {"type", "elements", "border", "language", "indent", "offset"}
        for key in sorted(set(part) - known):
            problems.add(f"unsupported property: {key}", f"{here}/{key}")
        leaves = part.get("elements")
        if not isinstance(leaves, list):
            problems.add("missing required field: elements", here + "/elements")
            continue
        for j, leaf in enumerate(leaves):
            _leaf(leaf, f"{here}/elements/{j}", problems)


def _leaf(leaf: Any, pointer: str, problems: Problems) -> None:
    kind = leaf.get("type") if isinstance(leaf, dict) else None
    if kind not in RICH_TEXT_LEAVES:
        problems.add(f"unsupported type: {kind}", pointer + "/type")
        return
    for key in sorted(RICH_TEXT_LEAVES[kind] - set(leaf)):
        problems.add(f"missing required field: {key}", f"{pointer}/{key}")
    for key in sorted(set(leaf) - RICH_TEXT_LEAVES[kind] - RICH_TEXT_OPTIONAL - {"type"}):
        problems.add(f"unsupported property: {key}", f"{pointer}/{key}")
    if kind == "text" and not (isinstance(leaf.get("text"), str) and leaf["text"]):
        problems.add("must be more than 0 characters", pointer + "/text")
    if kind == "broadcast" and leaf.get("range") not in {"here", "channel", "everyone"}:
        problems.add("must be one of: here, channel, everyone", pointer + "/range")
    style = leaf.get("style")
    if style is not None and (not isinstance(style, dict) or set(style) - STYLES
                              or not all(isinstance(v, bool) for v in style.values())):
        problems.add("must be a style object", pointer + "/style")


def check_table(block: dict[str, Any], pointer: str, problems: Problems) -> None:
    rows = block.get("rows")
    if not isinstance(rows, list) or not rows:
        return  # reported by the model
    if len(rows) > TABLE_ROWS:
        problems.add(f"must be less than {TABLE_ROWS + 1} items", pointer + "/rows")
    widths = set()
    for r, row in enumerate(rows):
        here = f"{pointer}/rows/{r}"
        if not isinstance(row, list) or not row:
            problems.add("must provide at least 1 item", here)
            continue
        widths.add(len(row))
        if len(row) > TABLE_CELLS:
            problems.add(f"must be less than {TABLE_CELLS + 1} items", here)
        for c, cell in enumerate(row):
            kind = cell.get("type") if isinstance(cell, dict) else None
            if kind == "raw_text":
                for key in sorted(set(cell) - {"type", "text"}):
                    problems.add(f"unsupported property: {key}", f"{here}/{c}/{key}")
                if not (isinstance(cell.get("text"), str) and cell["text"]):
                    problems.add("must be more than 0 characters", f"{here}/{c}/text")
            elif kind == "rich_text":
                check_rich_text(cell, f"{here}/{c}", problems)
            else:
                problems.add(f"unsupported type: {kind}", f"{here}/{c}/type")
    if len(widths) > 1:
        problems.add("every row must have the same number of cells", pointer + "/rows")
    settings = block.get("column_settings")
    if settings is None:
        return
    if not isinstance(settings, list) or len(settings) > TABLE_CELLS:
        problems.add(f"must be a list of at most {TABLE_CELLS} items", pointer + "/column_settings")
        return
    for i, setting in enumerate(settings):
        here = f"{pointer}/column_settings/{i}"
        if setting is None:
            continue
        if not isinstance(setting, dict) or set(setting) - {"align", "is_wrapped"}:
            problems.add("unsupported property", here)
        elif setting.get("align", "left") not in {"left", "center", "right"}:
            problems.add("must be one of: left, center, right", here + "/align")
        elif not isinstance(setting.get("is_wrapped", False), bool):
            problems.add("must be a boolean", here + "/is_wrapped")


# -- blocks ------------------------------------------------------------------------------------


def check_block(block: Any, pointer: str, problems: Problems, surface: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        problems.add("missing required field: type", pointer + "/type")
        return
    kind = block["type"]
    if kind in MESSAGE_ONLY and surface != "message":
        problems.add(f"unsupported type: {kind}", pointer + "/type")
        return
    model = check_model(Block.parse, block, pointer, problems)
    if model is None:
        return
    if kind in ALLOWED_ELEMENTS:
        most = {"actions": 25, "context": 10, "context_actions": 5}[kind]
        _elements(block, pointer, problems, ALLOWED_ELEMENTS[kind], most)
    elif kind == "section":
        if "text" in block:
            check_text(block["text"], pointer + "/text", problems)
        for i, item in enumerate(block.get("fields") or []):
            check_text(item, f"{pointer}/fields/{i}", problems, limit=2000)
        if "accessory" in block:
            check_element(block["accessory"], pointer + "/accessory", problems, ACCESSORIES)
    elif kind == "header":
        check_text(block.get("text"), pointer + "/text", problems, plain_only=True, limit=150)
    elif kind == "input":
        check_text(block.get("label"), pointer + "/label", problems, plain_only=True, limit=2000)
        if "hint" in block:
            check_text(block["hint"], pointer + "/hint", problems, plain_only=True, limit=2000)
        check_element(block.get("element"), pointer + "/element", problems, INPUTS)
    elif kind == "markdown":
        if not isinstance(block.get("text"), str) or not block["text"]:
            problems.add("must be more than 0 characters", pointer + "/text")
    elif kind == "rich_text":
        check_rich_text(block, pointer, problems)
    elif kind == "table":
        check_table(block, pointer, problems)


def check_blocks(blocks: Any, surface: str = "message", pointer: str = "/blocks") -> list[str]:
    """Everything wrong with `blocks` for a message, a modal or a home tab."""
    problems = Problems()
    if not isinstance(blocks, list):
        problems.add("must be an array", pointer)
        return problems.messages
    most = MESSAGE_BLOCKS if surface == "message" else VIEW_BLOCKS
    if len(blocks) > most:
        problems.add(f"must be less than {most + 1} items", pointer)
    seen: dict[str, int] = {}
    markdown = 0
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        check_block(block, here, problems, surface)
        if not isinstance(block, dict):
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str) and block.get("type") != "markdown":
            if block_id in seen:
                problems.add(f"duplicate block_id: {block_id}", here + "/block_id")
            seen[block_id] = i
        if block.get("type") == "markdown" and isinstance(block.get("text"), str):
            markdown += len(block["text"])
            if markdown > MARKDOWN_TOTAL:
                problems.add(f"markdown blocks exceed {MARKDOWN_TOTAL} characters in total",
                             here + "/text")
    return problems.messages


def tables(blocks: Any) -> int:
    return sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "table") \
        if isinstance(blocks, list) else 0


def check_view(view: Any, kind: str | None) -> list[str]:
    """Everything wrong with a view (`kind`: the type the method takes, None for either)."""
    problems = Problems()
    if not isinstance(view, dict):
        problems.add("must be an object", "/view")
        return problems.messages
    if kind and view.get("type") != kind:
        problems.add(f"must be of type {kind}", "/view/type")
    model = check_model(lambda d: View(**d), view, "/view", problems)
    if model is None:
        return problems.messages
    for key in ("title", "submit", "close"):
        if key in view:
            check_text(view[key], f"/view/{key}", problems, plain_only=True, limit=24)
    blocks = view.get("blocks")
    if view.get("type") == "modal":
        if "title" not in view:
            problems.add("missing required field: title", "/view/title")
        inputs = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if inputs and "submit" not in view:
            problems.add("missing required field: submit", "/view/submit")
    if blocks is None:
        problems.add("missing required field: blocks", "/view/blocks")
    else:
        surface = "home" if view.get("type") == "home" else "modal"
        problems.messages += check_blocks(blocks, surface, "/view/blocks")
    return problems.messages
