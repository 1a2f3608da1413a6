"""OpenAI's batch input format: one JSON object per line,

    {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {<a chat completion request>}}

(`/v1/completions` for a raw prompt, `/v1/score` for a reward model: the gateway's bodies). Bodies are
checked exactly as the gateway checks them (the same request models, strict JSON), so a line the gateway
would refuse is refused here, per line, naming the field; a body without a `model` takes the batch's.
A Batch API batch holds at most `MAX_REQUESTS_PER_BATCH` lines, as OpenAI's does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from api_client.jobs import LONE_SURROGATE, lone_surrogate_path
from batch.lines import BatchLine, LineError
from engines.errors import InvalidRequest
from gateway.chat_schemas import ChatCompletionRequest, ScoreRequest
from gateway.completions import CompletionRequest
from gateway.errors import ApiError
from gateway.messages import chat_messages, score_conversations
from gateway.strict_json import parse_json

AnsweredWhole = TypeVar("AnsweredWhole", ChatCompletionRequest, CompletionRequest)
URLS = ("/v1/chat/completions", "/v1/completions", "/v1/score")
_LINE_FIELDS = {"custom_id", "method", "url", "body"}
_UNDECODED = re.compile("[\udc80-\udcff]")  # a byte that was no UTF-8, kept by surrogateescape
MAX_REQUESTS_PER_BATCH = 50_000  # OpenAI's cap on a batch's input file ("up to 50,000 requests")


@dataclass(frozen=True)
class BatchInput:
    lines: list[BatchLine]
    refusals: list[LineError]


def read_batch_input(raw: bytes, endpoint: str, max_requests: int = MAX_REQUESTS_PER_BATCH) -> BatchInput:
    """A Batch API input file's lines and refusals (blank lines are neither). Read a line at a time and never
    past the cap, so a file of millions of short lines never becomes millions of objects; blocking (every body
    is validated), so the coordinator runs it on a thread. Over the cap: InvalidRequest naming input_file_id."""
    # split at b"\n" alone; a line that is not UTF-8 keeps its bad bytes as surrogates, refused by openai_lines
    texts = (line.decode("utf-8", errors="surrogateescape") for line in io.BytesIO(raw))
    lines: list[BatchLine] = []
    refusals: list[LineError] = []
    for line in openai_lines(texts, default_model=None, endpoint=endpoint):
        if len(lines) + len(refusals) == max_requests:
            raise InvalidRequest(
                f"the input file holds more than {max_requests:,} requests, a batch's cap", field="input_file_id"
            )
        (lines if isinstance(line, BatchLine) else refusals).append(line)
    return BatchInput(lines, refusals)


def openai_lines(
    raw_lines: Iterable[str], default_model: str | None, endpoint: str | None = None
) -> Iterator[BatchLine | LineError]:
    """Each non-blank input line as a BatchLine or the LineError that says why it cannot run. With an
    `endpoint` (a Batch API batch's), every line's `url` must be it."""
    seen: set[str] = set()
    for index, raw in enumerate(raw_lines):
        if not raw.strip():
            continue
        custom_id = None
        try:
            if (bad := _UNDECODED.search(raw)) is not None:
                # decoded with surrogateescape (valid UTF-8 never decodes to a surrogate): read as "\ufffd", a
                # line ran with garbled text and no error
                raise InvalidRequest(f"is not UTF-8 text (byte 0x{ord(bad.group()) - 0xDC00:02x})")
            item = parse_json(raw.encode())
            custom_id = _custom_id(item)
            if custom_id in seen:
                # without its custom_id: each custom_id has one result line, the earlier line's
                duplicate, custom_id = custom_id, None
                raise InvalidRequest(f"{duplicate!r} appears on an earlier line: each line needs its own",
                                     field="custom_id")  # fmt: skip
            seen.add(custom_id)
            yield _line(item, custom_id, index, default_model, endpoint)
        except ApiError as error:
            yield LineError(custom_id=custom_id, index=index, message=error.message, param=error.param)
        except InvalidRequest as error:
            yield LineError(custom_id=custom_id, index=index, message=error.message, param=error.field)
        except ValidationError as error:
            first = error.errors()[0]
            param = ".".join(["body", *map(str, first["loc"])])
            yield LineError(custom_id=custom_id, index=index, message=first["msg"], param=param)
        except ValueError as error:  # not JSON at all (after ValidationError, a ValueError too)
            yield LineError(custom_id=custom_id, index=index, message=f"not a JSON object: {error}")


def _custom_id(item: Any) -> str:
    if not isinstance(item, dict):
        raise InvalidRequest("each line must be a JSON object")
    unknown = sorted(set(item) - _LINE_FIELDS)
    if unknown:
        raise InvalidRequest("is not a batch line field", field=unknown[0])
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 512:
        raise InvalidRequest("must be a string of 1 to 512 characters", field="custom_id")
    _refuse_lone_surrogates(custom_id, "custom_id")
    return custom_id


def _refuse_lone_surrogates(value: Any, field: str) -> None:
    """No job could carry a lone surrogate, nor its custom_id name a job: refused here, naming where it is, the
    line stays a line's refusal instead of a batch that fails each time it is driven."""
    if (where := lone_surrogate_path(value, field)) is not None:
        raise InvalidRequest(LONE_SURROGATE, field=where)


def _line(
    item: dict[str, Any], custom_id: str, index: int, default_model: str | None, endpoint: str | None
) -> BatchLine:
    if item.get("method", "POST") != "POST":
        raise InvalidRequest("must be POST", field="method")
    url = item.get("url")
    if endpoint is not None and url != endpoint:
        raise InvalidRequest(f"must be the batch's endpoint, {endpoint}", field="url")
    if url not in URLS:
        raise InvalidRequest(f"must be one of {', '.join(URLS)}", field="url")
    body = item.get("body")
    if not isinstance(body, dict):
        raise InvalidRequest("must be a JSON object (the request's body)", field="body")
    _refuse_lone_surrogates(body, "body")
    if "model" not in body and default_model is not None:
        body = {**body, "model": default_model}
    try:
        return _body_line(body, url, custom_id, index)
    except InvalidRequest as error:  # the body's fields, named as the line holds them
        raise InvalidRequest(error.message, field=f"body.{error.field}" if error.field else "body") from None


def _body_line(body: dict[str, Any], url: str, custom_id: str, index: int) -> BatchLine:
    if url == "/v1/score":
        score = ScoreRequest.model_validate(body)
        conversations = None if score.conversations is None else score_conversations(score.conversations)
        options = {"max_length": score.max_length, "deadline_s": score.deadline_s, "max_runtime_s": score.max_runtime_s}
        return BatchLine(
            custom_id=custom_id, index=index, url=url, model=score.model, texts=score.messages,
            conversations=conversations, options={name: value for name, value in options.items() if value is not None},
        )  # fmt: skip
    if url == "/v1/completions":
        completion = _answered_whole(CompletionRequest.model_validate(body))
        return BatchLine(
            custom_id=custom_id, index=index, url=url, model=completion.model, prompt=completion.prompt_text(),
            echo=completion.echo, options=completion.job_options(),
        )  # fmt: skip
    chat = _answered_whole(ChatCompletionRequest.model_validate(body))
    return BatchLine(
        custom_id=custom_id, index=index, url=url, model=chat.model,
        messages=chat_messages(chat.messages, remote_images=False), options=chat.job_options(),
    )  # fmt: skip


def _answered_whole(request: AnsweredWhole) -> AnsweredWhole:
    if request.stream:
        raise InvalidRequest("a batch line is answered whole: leave it out", field="stream")
    return request
