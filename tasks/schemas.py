"""What crosses Redis between producers and workers: job payloads, job records, stream events. JSON only."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engines.errors import InferqError, InvalidRequest
from engines.logprobs import TokenLogprob
from engines.schemas import FinishReason, GenerationParams, Message, Response, invalid_from_validation

# Queue names are built from model names; ":" separates Redis priority sub-queues.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
# Bounds on what one job may ask of a shared fleet, whoever submits it.
MAX_MESSAGES = 1024
MAX_PROMPT_CHARS = 1_000_000  # more text than any model's context holds
MAX_RUNTIME_S = 24 * 3600.0  # deadlines and time limits: a job is kept (its record) about this long
MAX_DEADLINE_S = MAX_RUNTIME_S


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _Job(_Wire):
    model: str = Field(description="the served model name; routes the job to that model's queue")
    queued_at: float = Field(description="producer clock, epoch seconds")
    deadline_at: float | None = Field(None, description="epoch seconds; the job expires if not done by then")
    max_runtime_s: float | None = Field(
        None,
        gt=0,
        le=MAX_RUNTIME_S,
        description="longest the job may run once started; the worker's default applies when unset",
    )

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError("model names use letters, digits and . _ / - (at most 128)")
        return value


class ChatJob(_Job):
    """A job that generates text: a chat (`messages`, through the model's chat template), or a completion
    of a raw `prompt` (no template: the model continues the text)."""

    kind: Literal["chat"] = "chat"
    prompt: str | None = Field(None, min_length=1, max_length=MAX_PROMPT_CHARS)
    messages: list[Message] | None = Field(None, min_length=1, max_length=MAX_MESSAGES, validate_default=True)
    system: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    tools: str | list[dict[str, Any]] | None = None
    images: list[str] | None = None
    videos: list[str] | None = None
    audios: list[str] | None = None
    params: GenerationParams = Field(default_factory=GenerationParams)
    adapter: str | None = None
    stream: bool = True

    @field_validator("messages")
    @classmethod
    def _messages_or_a_prompt(cls, messages: list[Message] | None, info: ValidationInfo) -> list[Message] | None:
        if (messages is None) == (info.data.get("prompt") is None):
            raise ValueError("give messages (a chat) or a prompt (a completion), one of them")
        chars = sum(len(message.text()) for message in messages or ())
        if chars > MAX_PROMPT_CHARS:
            raise ValueError(f"{chars} characters of text; a job takes at most {MAX_PROMPT_CHARS}")
        return messages

    @model_validator(mode="after")
    def _a_completion_is_raw(self) -> ChatJob:
        if self.prompt is not None and (self.system is not None or self.tools is not None):
            raise ValueError("a completion takes a raw prompt: no system, no tools")
        return self


class ScoreJob(_Job):
    """Texts to score as they are, or conversations the worker renders with the model's chat template
    first (what a reward model was trained on: scoring raw text is where LLaMA-Factory users trip)."""

    kind: Literal["score"] = "score"
    texts: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)
    conversations: list[Annotated[list[Message], Field(min_length=1)]] | None = Field(None, min_length=1)
    max_length: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_input(self) -> ScoreJob:
        if (self.texts is None) == (self.conversations is None):
            raise ValueError("give texts or conversations, one of them")
        return self


JOB_MODELS: dict[str, type[ChatJob] | type[ScoreJob]] = {"chat": ChatJob, "score": ScoreJob}


def parse_job(payload: Any, kind: str) -> ChatJob | ScoreJob:
    """Validates a raw task payload; errors name the field (e.g. `messages.0.role`)."""
    if not isinstance(payload, dict):
        raise InvalidRequest(f"the task takes one JSON object, got {type(payload).__name__}", field="payload")
    try:
        return JOB_MODELS[kind].model_validate(payload)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


class JobStatus(StrEnum):
    """How a job ended; every record has exactly one."""

    #: the engine finished every answer (or score); the record holds them
    SUCCEEDED = "succeeded"
    #: refused (bad input), failed in the engine, or failed for a reason outside inferq's tree
    FAILED = "failed"
    #: a client cancelled it; a running job's record keeps the text generated so far
    CANCELLED = "cancelled"
    #: its deadline passed, or no live worker served its model; a running job keeps its partial text
    EXPIRED = "expired"
    #: it ran longer than its max_runtime_s and was stopped; the record keeps its partial text
    TIMED_OUT = "timed_out"


class ErrorInfo(_Wire):
    type: str
    message: str
    field: str | None = None

    @classmethod
    def of(cls, error: InferqError) -> ErrorInfo:
        return cls(type=type(error).__name__, message=error.message, field=error.field)


class Usage(_Wire):
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Timings(_Wire):
    queued_at: float
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None


class JobRecord(_Wire):
    """The one result of a job; written once (SET NX), whoever finishes it."""

    job_id: str
    kind: Literal["chat", "score"]
    status: JobStatus = Field(strict=False)  # its string value too, from Python as from JSON
    model: str
    engine: str | None = None
    worker: str | None = Field(None, description="the Celery hostname that ran the job")
    host: str | None = None
    attempt: int = 0
    responses: list[Response] | None = None
    scores: list[float] | None = None
    usage: Usage | None = None
    timings: Timings
    error: ErrorInfo | None = None


class ToolCallDelta(_Wire):
    """A piece of a streamed tool call: its start (id and name), then its arguments' JSON text in pieces."""

    index: int = Field(description="the call's place among the answer's calls")
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class TokenEvent(_Wire):
    """What one engine step added to one answer, read (engines/output.py): the answer's text, a reasoning
    model's thoughts, tool-call pieces, the tokens' log probabilities when asked for."""

    type: Literal["token"] = "token"
    seq: int
    attempt: int
    index: int = Field(description="which of the job's n answers")
    text: str = Field(description="the answer's text (no thoughts, no tool calls)")
    num_tokens: int
    finish_reason: FinishReason | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True, slots=True)
class PlainToken:
    """A TokenEvent that carries only text (no finish, thoughts, calls or log probabilities), as most of a
    stream's events do: written with a JSON template instead of a pydantic model (0.6 µs against 2.9 to
    build and dump one, measured), and read back as the TokenEvent it is."""

    seq: int
    attempt: int
    index: int
    text: str
    num_tokens: int

    def json(self) -> str:
        text = json.dumps(self.text, ensure_ascii=False)
        return (
            f'{{"type":"token","seq":{self.seq},"attempt":{self.attempt},"index":{self.index},'
            f'"text":{text},"num_tokens":{self.num_tokens}}}'
        )


class RestartEvent(_Wire):
    """The job runs again (its worker died): text from earlier attempts is void."""

    type: Literal["restart"] = "restart"
    seq: int
    attempt: int


class FinalEvent(_Wire):
    type: Literal["final"] = "final"
    seq: int
    record: JobRecord


StreamEvent = Annotated[TokenEvent | RestartEvent | FinalEvent, Field(discriminator="type")]
STREAM_EVENT: TypeAdapter[TokenEvent | RestartEvent | FinalEvent] = TypeAdapter(StreamEvent)


class JobMeta(_Wire):
    """Written by the producer at submit time."""

    job_id: str
    kind: Literal["chat", "score"]
    model: str
    queued_at: float
    deadline_at: float | None = None
    owner: str | None = Field(None, description="who submitted it (a gateway tenant); only they may see it there")
    echo: dict[str, Any] | None = Field(
        None, description="what its producer keeps with the job to answer with later (a Responses request's parameters)"
    )
    request_digest: str | None = Field(
        None, description="an idempotent submit's request, hashed: a retry under the same key must ask the same"
    )
    tags: dict[str, str] | None = Field(
        None, description="short labels Flower shows as the task's kwargs and finds it by (kwargs:batch=ID)"
    )


class OwnerQuota(_Wire):
    """How many jobs one owner may have in flight at once; None: no limit."""

    max_jobs: int | None = Field(None, ge=1, description="jobs queued or running")
    max_queued: int | None = Field(None, ge=1, description="of those, jobs not started yet")

    @property
    def limits_anything(self) -> bool:
        return self.max_jobs is not None or self.max_queued is not None


class WorkerInfo(_Wire):
    """What a live worker announces (key `inferq:worker:<hostname>`, refreshed while it runs)."""

    hostname: str
    model: str
    engine: str
    model_path: str
    can_generate: bool
    adapters: list[str] = Field(default_factory=list)
    host: str
    pid: int
    started_at: float
    concurrency: int = Field(description="jobs it runs at once: its capacity")
    num_running: int = 0
    gpus: list[int] | None = None
    max_queued: int | None = Field(None, description="the most jobs that may wait in its model's queue")
    context_length: int | None = Field(None, description="prompt + answer tokens the model holds")


class QueueInfo(_Wire):
    """A model's queue as it stands: how many jobs wait, and since when the oldest has waited."""

    model: str
    depth: int
    oldest_queued_at: float | None = None
