"""Building job payloads: pure functions, shared by the async client and its sync facade."""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from engines.errors import InvalidRequest
from engines.schemas import Message, invalid_from_validation, parse_params
from tasks.schemas import MAX_DEADLINE_S, ChatJob, JobMeta, ScoreJob

MAX_IDEMPOTENCY_KEY_CHARS = 255  # Stripe's bound, which OpenAI-style APIs follow
# A job's tags ride in every message and every task event: a few short ones.
MAX_TAGS = 8
MAX_TAG_CHARS = 128


def new_job_id() -> str:
    return uuid.uuid4().hex


def idempotent_job_id(owner: str | None, key: str) -> str:
    """The job an idempotency key stands for: the same owner and key are the same job id, so a retry finds what
    its first try made, and two owners' keys never meet."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidRequest(
            f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters", field="idempotency_key"
        )
    return hashlib.sha256(f"{owner or ''}\0{key}".encode()).hexdigest()[:32]


def request_digest(job: ChatJob | ScoreJob) -> str:
    """What a retry must ask again to be the same request: the job, less the clock times each try sets."""
    return hashlib.sha256(job.model_dump_json(exclude={"queued_at", "deadline_at"}).encode()).hexdigest()[:32]


def chat_job(
    messages: Sequence[Message | dict[str, Any]],
    model: str | None,
    *,
    system: str | None = None,
    tools: str | list[dict[str, Any]] | None = None,
    images: Sequence[str] | None = None,
    videos: Sequence[str] | None = None,
    audios: Sequence[str] | None = None,
    adapter: str | None = None,
    stream: bool = True,
    deadline_s: float | None = None,
    max_runtime_s: float | None = None,
    **params: Any,
) -> ChatJob:
    """A validated ChatJob; bad input raises InvalidRequest naming the field, before anything is sent."""
    return _validated(
        ChatJob,
        model=_model(model),
        queued_at=time.time(),
        deadline_at=_deadline(deadline_s),
        max_runtime_s=max_runtime_s,
        messages=list(messages) if isinstance(messages, (list, tuple)) else messages,
        system=system,
        tools=tools,
        images=_list_or_none(images),
        videos=_list_or_none(videos),
        audios=_list_or_none(audios),
        adapter=adapter,
        stream=stream,
        params=parse_params(params),
    )


def completion_job(
    prompt: str,
    model: str | None,
    *,
    adapter: str | None = None,
    stream: bool = True,
    deadline_s: float | None = None,
    max_runtime_s: float | None = None,
    **params: Any,
) -> ChatJob:
    """A raw-prompt completion (no chat template): the model continues `prompt`."""
    return _validated(
        ChatJob,
        model=_model(model),
        queued_at=time.time(),
        deadline_at=_deadline(deadline_s),
        max_runtime_s=max_runtime_s,
        prompt=prompt,
        adapter=adapter,
        stream=stream,
        params=parse_params(params),
    )


def score_job(
    texts: Sequence[str] | None,
    model: str | None,
    *,
    conversations: Sequence[Sequence[Message | dict[str, Any]]] | None = None,
    max_length: int | None = None,
    deadline_s: float | None = None,
    max_runtime_s: float | None = None,
) -> ScoreJob:
    return _validated(
        ScoreJob,
        model=_model(model),
        queued_at=time.time(),
        deadline_at=_deadline(deadline_s),
        max_runtime_s=max_runtime_s,
        texts=list(texts) if isinstance(texts, (list, tuple)) else texts,
        conversations=[list(c) for c in conversations] if isinstance(conversations, (list, tuple)) else conversations,
        max_length=max_length,
    )


def encode_job(job: ChatJob | ScoreJob, max_payload_bytes: int) -> dict[str, Any]:
    """The task argument, refused when its JSON is larger than the cap every worker enforces too."""
    try:
        encoded = job.model_dump_json(exclude_none=True)
    except PydanticSerializationError:
        where = lone_surrogate_path(job.model_dump(exclude_none=True))
        if where is None:
            raise
        raise InvalidRequest(LONE_SURROGATE, field=where) from None
    size = len(encoded.encode())
    if size > max_payload_bytes:
        raise InvalidRequest(
            f"the job is {size} bytes of JSON; the cap is {max_payload_bytes} (INFERQ_MAX_PAYLOAD_BYTES)",
            field="payload",
        )
    return json.loads(encoded)


LONE_SURROGATE = "holds a lone surrogate escape (such as \\ud800), which is not text and cannot be sent"


def lone_surrogate_path(value: Any, path: str = "") -> str | None:
    """Where in `value` (dicts, lists, strings) a string or key is not UTF-8, as a dotted path (a field is
    named so in every other refusal); None if nowhere. JSON's `\\ud800` parses into such a string, which no
    job can carry (its JSON goes to Redis as UTF-8)."""
    if isinstance(value, str):
        return None if encodes(value) else path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and not encodes(key):
            return path or where  # a key (a tool parameter's name, say): named by the object that holds it
        if (found := lone_surrogate_path(item, where)) is not None:
            return found
    return None


def encodes(text: str) -> bool:
    """Whether UTF-8 can encode `text`."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def meta_of(
    job_id: str,
    job: ChatJob | ScoreJob,
    owner: str | None = None,
    echo: dict[str, Any] | None = None,
    digest: str | None = None,
    tags: dict[str, str] | None = None,
) -> JobMeta:
    return JobMeta(
        job_id=job_id,
        kind=job.kind,
        model=job.model,
        queued_at=job.queued_at,
        deadline_at=job.deadline_at,
        owner=owner,
        echo=echo,
        request_digest=digest,
        tags=tags,
    )


def checked_tags(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    """A job's labels, as Flower will show them: a few, each an identifier and a short text."""
    if not tags:
        return None
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"{len(tags)} tags; at most {MAX_TAGS}", field="tags")
    for name, value in tags.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise InvalidRequest(f"tag name {name!r} is not an identifier", field="tags")
        if not (isinstance(value, str) and 0 < len(value) <= MAX_TAG_CHARS):
            raise InvalidRequest(f"must be text of 1 to {MAX_TAG_CHARS} characters", field=f"tags.{name}")
    return dict(tags)


def _validated(model_cls, **fields: Any):
    try:
        return model_cls.model_validate(fields)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


def _model(model: str | None) -> str:
    if model is None:
        raise InvalidRequest("name the served model (the worker's --name), or give the client a default", field="model")
    return model


def _deadline(deadline_s: float | None) -> float | None:
    if deadline_s is None:
        return None
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float) or not math.isfinite(deadline_s):
        raise InvalidRequest("must be a finite number of seconds from now", field="deadline_s")
    if not 0 < deadline_s <= MAX_DEADLINE_S:
        raise InvalidRequest(f"must be above 0 and at most {MAX_DEADLINE_S:g} s from now", field="deadline_s")
    return time.time() + deadline_s


def _list_or_none(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)
