"""Configuration from the environment (and an optional `.env`), in one typed place.

Every knob a team may want to turn is here so that README.md can list them all and the rest of
the code receives plain values instead of reading the environment itself.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

if TYPE_CHECKING:
    from feedback.db import EngineOptions


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


ThreadMode = Literal["asker", "mention"]


def _pairs(value: object) -> object:
    """`C0123=mention,C0456=asker` as {channel: mode}; a part without `=` is left for the type
    check to refuse with the variable's name."""
    if isinstance(value, str):
        pairs: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            key, sep, mode = part.partition("=")
            if not sep:
                return value
            pairs[key.strip()] = mode.strip().lower()
        return pairs
    return value


def default_model_cache() -> Path:
    """ONNX exports are derived from the weights alone, so one cache serves every data folder."""
    return Path(user_cache_dir("askloop", appauthor=False)) / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASKLOOP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # -- knowledge base -------------------------------------------------------------------------
    home: Path = Field(default_factory=lambda: Path(user_data_dir("askloop", appauthor=False)))
    chroma_url: str | None = None
    collection: str = "askloop"
    embedding_model: str | None = None
    # onnx-fp32 (exact vectors, no torch), onnx-int8 (fastest, slightly other vectors) or torch
    embedding_backend: Literal["onnx-fp32", "onnx-int8", "torch"] = "onnx-fp32"
    # Where ONNX exports of the model are kept: derived from the weights, so shared by every home
    model_cache: Path = Field(default_factory=lambda: default_model_cache())
    llm: str | None = None
    top_k: int = Field(default=5, ge=1, le=50)
    answer_threshold: float = Field(default=0.35, ge=-1.0, le=1.0)
    chunk_size: int = Field(default=1000, ge=100, le=20000)
    chunk_overlap: int = Field(default=100, ge=0, le=5000)
    title_weight: float = Field(default=1.0, ge=0.0, le=10.0)  # title vector blended into each chunk's
    max_question_chars: int = Field(default=2000, ge=10)
    lexical_weight: float = Field(default=0.05, ge=0.0, le=1.0)  # keyword (BM25) bonus; 0: vectors only

    # -- feedback store -------------------------------------------------------------------------
    database_url: str | None = None
    moderators: Annotated[list[str], NoDecode] = Field(default_factory=list)
    moderator_group: str | None = None
    review_channel: str | None = None
    vote_limit_per_hour: int = Field(default=30, ge=0)  # counted votes per user per hour
    asker_vote_weight: float = Field(default=1.0, ge=0.0)  # weight of the asker's own vote
    other_vote_weight: float = Field(default=1.0, ge=0.0)  # weight of everyone else's vote
    tuning_cache_seconds: float = Field(default=2.0, ge=0.0)  # how long a replica caches the active version
    gate_tolerance: float = Field(default=0.05, ge=0.0, le=1.0)  # largest nDCG@10 drop of a golden question
    gate_recent_questions: int = Field(default=200, ge=0)  # recent questions the gate replays
    tune_query_encoder: bool = True  # learning may tune the question encoder (docs/learning.md)
    title_margin: float = Field(default=0.0, ge=0.0, le=2.0)  # where feedback stops (docs/learning.md); 2: off

    # -- operations (docs/operations.md) ------------------------------------------------------
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    learn_after_votes: int = Field(default=20, ge=0)  # 0: never trigger on a vote count
    learn_interval: float = Field(default=3600.0, ge=0)  # seconds; 0: no schedule
    learn_poll: float = Field(default=30.0, gt=0)  # how often a worker checks the backlog
    http_max_body: int = Field(default=1024 * 1024, ge=1024)  # bytes; larger requests get 413
    db_connect_timeout: float = Field(default=5.0, ge=1.0)  # seconds to open a PostgreSQL connection
    db_statement_timeout: float = Field(default=30.0, gt=0)  # seconds one statement may run (0 < x)
    db_pool_timeout: float = Field(default=5.0, gt=0)  # seconds to wait for a pooled connection
    db_keepalive_idle: int = Field(default=30, ge=1)  # seconds idle before TCP keepalive probes
    db_busy_timeout: float = Field(default=30.0, ge=0)  # SQLite: seconds to wait for the write lock

    # -- Slack ---------------------------------------------------------------------------------
    slack_bot_token: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "ASKLOOP_SLACK_BOT_TOKEN")
    )
    slack_signing_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "ASKLOOP_SLACK_SIGNING_SECRET"),
    )
    slack_app_token: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "ASKLOOP_SLACK_APP_TOKEN")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias=AliasChoices("SLACK_API_URL", "ASKLOOP_SLACK_API_URL"),
    )
    slack_looking_after: float = Field(default=1.5, ge=0.0)  # seconds a generated answer may take before "looking…"
    slack_working_reaction: str = "eyes"  # on a question while it is answered ("" for none)
    # In a thread the bot answered: "asker" answers the asker's follow-up questions and mentions,
    # "mention" only messages that mention the bot; per channel: C0123=mention,C0456=asker.
    slack_thread_mode: ThreadMode = "asker"
    slack_channel_modes: Annotated[dict[str, ThreadMode], NoDecode] = Field(default_factory=dict)
    expert_group: str | None = None  # user group (S…) "Ask an expert" mentions in the thread
    slack_native_feedback: bool = True  # Slack's feedback_buttons; plain buttons when False
    slack_review_poll: float = Field(default=30.0, ge=0.0)  # seconds between review-queue checks (0: off)

    @field_validator("moderators", mode="before")
    @classmethod
    def _split_moderators(cls, value: object) -> object:
        return _csv(value)

    @field_validator("slack_channel_modes", mode="before")
    @classmethod
    def _split_channel_modes(cls, value: object) -> object:
        return _pairs(value)

    def thread_mode(self, channel: str) -> ThreadMode:
        """How the bot takes part in threads of `channel` (its own setting, else the default)."""
        return self.slack_channel_modes.get(channel, self.slack_thread_mode)

    @field_validator("chroma_url", "embedding_model", "llm", "database_url", "expert_group", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("model_cache", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return default_model_cache()
        return value

    @field_validator("embedding_backend", mode="before")
    @classmethod
    def _backend_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @cached_property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def sqlite_path(self) -> Path:
        return self.home / "askloop.db"

    def engine_options(self) -> "EngineOptions":
        """The feedback database's waits, for `feedback.db.make_engine`."""
        from feedback.db import EngineOptions

        return EngineOptions(
            connect_timeout=self.db_connect_timeout,
            statement_timeout=self.db_statement_timeout,
            pool_timeout=self.db_pool_timeout,
            keepalive_idle=self.db_keepalive_idle,
            sqlite_busy_timeout=self.db_busy_timeout,
        )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.sqlite_path}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
