"""Structured logs: JSON lines or readable text, with the request and event ids, safe to read.

Log lines carry text from outside (a Slack trigger id, an exception message quoting a request,
a library logging a body), so both formats hold two promises:
- one record is one line: newlines, carriage returns, escape sequences, other control
  characters, Unicode line separators and bidi overrides are escaped in every field, so nobody
  can forge a line or repaint a terminal; tracebacks (text format) are indented under a "|"
  margin, so they can never look like a line of their own;
- no field is unbounded: messages and extra values are cut at `MAX_FIELD` characters (a
  library that logs a rejected request body logs its first few kilobytes, not 100 MB).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import datetime, timezone
from typing import Any

from bot.observability.context import event_id_var, request_id_var

MAX_FIELD = 4096

# C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` on one line, with every control or direction-changing character spelled out."""
    return _UNSAFE.sub(_escape_char, text)


def cap(text: str, limit: int = MAX_FIELD) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def safe(text: object) -> str:
    """Cut, then escaped: what every formatter prints of a field."""
    return escape(cap(str(text)))


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message", "ids", "taskName"}
# json.dumps escapes C0 controls itself; these it would leave raw.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string in a library's call must not lose the line
        return f"{record.msg!r} {record.args!r}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request/event ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": cap(_message(record)),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        eid = getattr(record, "event_id", None) or event_id_var.get()
        if rid:
            entry["request_id"] = cap(str(rid), 200)
        if eid:
            entry["event_id"] = cap(str(eid), 200)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry and not key.startswith("_"):
                if isinstance(value, (int, float, bool, type(None))):
                    entry[key] = value
                else:
                    entry[key] = cap(value if isinstance(value, str) else repr(value))
        if record.exc_info:
            entry["error"] = cap("".join(traceback.format_exception_only(*record.exc_info[:2])).strip())
            entry["traceback"] = self.formatException(record.exc_info)
        text = json.dumps(entry, ensure_ascii=False, default=str)
        return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, the ids, the message; all escaped."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or request_id_var.get()
        eid = getattr(record, "event_id", None) or event_id_var.get()
        ids = "".join(f" [{label}={safe(value)}]" for label, value in (("req", rid), ("event", eid)) if value)
        line = (f"{self.formatTime(record)} {record.levelname:<7} {safe(record.name)}{ids}: "
                f"{safe(_message(record))}")
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for block in details:
            line += "".join(f"\n  | {escape(part)}" for part in block.splitlines())
        return line


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {fmt!r}: use json or text")


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at emit time, not the one current at set-up.

    A handler bound to a replaced stderr (a test runner's capture, a closed pipe) would turn
    every later log line into a "--- Logging error ---" traceback.
    """

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; ignore
        pass


def configure_logging(fmt: str = "text", level: str | int = "INFO") -> None:
    """Root logging to stderr in the chosen format; uvicorn's loggers propagate into it."""
    handler = _CurrentStderrHandler()
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_askloop", False):
            root.removeHandler(old)
    handler._askloop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    quiet_chatty_libraries(root.level)


# HTTP client libraries log every request at INFO (one line per Chroma query, per Slack call).
CHATTY_LOGGERS = ("httpx", "httpcore", "chromadb", "urllib3", "slack_sdk.web.async_base_client",
                  "slack_bolt")


def quiet_chatty_libraries(level: int) -> None:
    """Keep their lines at WARNING and above unless we are debugging."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)


def uvicorn_log_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A `log_config` for `uvicorn.run` so its own lines come out in the same format."""
    formatter = f"{__name__}.JsonFormatter" if fmt == "json" else f"{__name__}.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"askloop": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "askloop"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            **{name: {"level": "DEBUG" if level.upper() == "DEBUG" else "WARNING"} for name in CHATTY_LOGGERS},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }


def configure_from_settings(settings: Any) -> None:
    configure_logging(getattr(settings, "log_format", "text"), getattr(settings, "log_level", "INFO"))
