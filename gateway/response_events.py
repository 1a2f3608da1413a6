"""A job's events (its Redis replay log) as Responses API stream events: the only place they are made.

Events are numbered 0, 1, 2, ... with no gap, counted from the start of the log as it is replayed, so every
gateway numbers every event alike (the log is the same for all) and `starting_after=N` means "replay the
job's log and drop what is numbered N or less": nothing of a stream lives in a gateway's memory.

Items open as their first piece arrives, each with its `output_item.added`, and close at the end: a
reasoning item (its thoughts, `response.reasoning_text.delta`), the message (its text, with logprobs when asked
for), and one `function_call` item per call (`response.function_call_arguments.delta` as the arguments
arrive). The terminal event carries the whole response, its output the items as streamed.

A job that restarts on another worker (its worker died) voids the text of the attempt before: a reader
that already passed some of it on gets an `error` event and the stream ends (the response itself goes on;
GET it for the final answer). A reader arriving later follows the new attempt only, numbered from
(attempt - 1) * 10^9, so that a client resuming with a number of the voided attempt gets that `error` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ApiError
from gateway.openai_shapes import responses_logprobs
from gateway.response_objects import (
    call_item_id,
    function_call_item,
    message_id,
    message_item,
    output_text,
    reasoning_id,
    reasoning_item,
    response_object,
    terminal_status,
)
from tasks.schemas import FinalEvent, JobMeta, JobRecord, RestartEvent, TokenEvent, ToolCallDelta

_TERMINAL_EVENT = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
    # the Responses API has no cancelled event; the partial answer is what "incomplete" announces
    "cancelled": "response.incomplete",
}


# The numbers of each attempt's events start this far apart: far more than one answer's events.
ATTEMPT_NUMBERS = 10**9
_RESTARTED = "the job restarted on another worker: the text streamed so far is void; GET the response for the answer"


@dataclass
class _Item:
    kind: str  # "reasoning", "message", "function_call"
    output_index: int
    text: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    call_index: int = 0


class ResponseEventBuilder:
    def __init__(self, meta: JobMeta) -> None:
        self._meta = meta
        self._job_id = meta.job_id
        self._with_logprobs = bool((meta.echo or {}).get("include_logprobs"))
        self._items: list[_Item] = []
        self._reasoning: _Item | None = None
        self._message: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._next_number = 0
        self.attempt_starts_at = 0  # the first number of the current attempt's events (0 for the first attempt)
        self._passed_on = False  # some of the answer went out: a restart voids it
        self.ended = False

    def opening(self) -> list[dict[str, Any]]:
        return [
            self._emit("response.created", response=response_object(self._meta, None, "queued")),
            self._emit("response.in_progress", response=response_object(self._meta, None, "in_progress")),
        ]

    def on_event(self, event: TokenEvent | RestartEvent | FinalEvent) -> list[dict[str, Any]]:
        if isinstance(event, TokenEvent):
            return self._on_token(event) if event.index == 0 else []
        if isinstance(event, RestartEvent):
            return self._on_restart(event)
        return self._on_final(event.record)

    # -- pieces of the answer -----------------------------------------------------------------

    def _on_token(self, event: TokenEvent) -> list[dict[str, Any]]:
        made: list[dict[str, Any]] = []
        if event.reasoning:
            made += self._reason(event.reasoning)
        if event.text or (event.logprobs and self._with_logprobs):
            made += self._say(event.text, event.logprobs)
        for call in event.tool_calls or ():
            made += self._call(call)
        return made

    def _reason(self, text: str) -> list[dict[str, Any]]:
        made = []
        if self._reasoning is None:
            self._reasoning = self._open("reasoning")
            item = reasoning_item(self._job_id, "", "in_progress")
            made.append(self._emit("response.output_item.added", output_index=self._reasoning.output_index, item=item))
        self._reasoning.text.append(text)
        where = self._where(self._reasoning, reasoning_id)
        made.append(self._emit("response.reasoning_text.delta", **where, delta=text))
        return made

    def _say(self, text: str, logprobs: list | None) -> list[dict[str, Any]]:
        made = []
        if self._message is None:
            self._message = self._open("message")
            item = message_item(self._job_id, "", "in_progress")
            made.append(self._emit("response.output_item.added", output_index=self._message.output_index, item=item))
            made.append(
                self._emit(
                    "response.content_part.added", **self._where(self._message, message_id), part=output_text("")
                )
            )
        shaped = responses_logprobs(logprobs) if self._with_logprobs else []
        self._message.text.append(text)
        self._message.logprobs += shaped
        made.append(
            self._emit(
                "response.output_text.delta", **self._where(self._message, message_id), delta=text, logprobs=shaped
            )
        )
        return made

    def _call(self, piece: ToolCallDelta) -> list[dict[str, Any]]:
        made = []
        item = self._calls.get(piece.index)
        if item is None:
            item = self._calls[piece.index] = self._open("function_call")
            item.call_id, item.name, item.call_index = piece.id or "", piece.name or "", piece.index
            added = function_call_item(self._job_id, piece.index, item.call_id, item.name, "", "in_progress")
            made.append(self._emit("response.output_item.added", output_index=item.output_index, item=added))
        if piece.arguments:
            item.text.append(piece.arguments)
            made.append(
                self._emit(
                    "response.function_call_arguments.delta",
                    item_id=call_item_id(self._job_id, item.call_index),
                    output_index=item.output_index,
                    delta=piece.arguments,
                )
            )
        return made

    # -- the end ------------------------------------------------------------------------------

    def _on_restart(self, event: RestartEvent) -> list[dict[str, Any]]:
        if not self._passed_on:
            # This attempt's events are numbered past any an earlier attempt's could have had, so that a client
            # resuming from one of those is told its text is void (`voided`), not handed this attempt's after it.
            self.attempt_starts_at = max(self._next_number, (event.attempt - 1) * ATTEMPT_NUMBERS)
            self._next_number = self.attempt_starts_at
            return []
        self.ended = True
        return [self._error("server_error", "job_restarted", _RESTARTED, None)]

    def voided(self, after: int) -> dict[str, Any]:
        """The event that ends a stream resumed after `after`, a number of an attempt the job has since restarted
        from: what the client has of the answer is void."""
        self.ended = True
        self._next_number = after + 1
        return self._error("server_error", "job_restarted", _RESTARTED, None)

    def error(self, api_error: ApiError, after: int) -> dict[str, Any]:
        """The event that ends a stream the job's events broke off, numbered after what the client has."""
        self.ended = True
        self._next_number = max(self._next_number, after + 1)
        return self._error(api_error.type, api_error.code, api_error.message, api_error.param)

    def _error(self, kind: str, code: str | None, message: str, param: str | None) -> dict[str, Any]:
        return self._emit("error", error={"type": kind, "code": code, "message": message, "param": param})

    def _on_final(self, record: JobRecord) -> list[dict[str, Any]]:
        made: list[dict[str, Any]] = []
        finish = record.responses[0].finish_reason if record.responses else "abort"
        status = "completed" if finish in ("stop", "tool_calls") else "incomplete"
        output = []
        for item in self._items:
            closing, done_item = self._close(item, status)
            made += closing
            output.append(done_item)
        response = response_object(self._meta, record, output=output if self._items else None)
        made.append(self._emit(_TERMINAL_EVENT[terminal_status(record)], response=response))
        self.ended = True
        return made

    def _close(self, item: _Item, status: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        text = "".join(item.text)
        if item.kind == "reasoning":
            where = self._where(item, reasoning_id)
            done = reasoning_item(self._job_id, text, "completed")
            events = [self._emit("response.reasoning_text.done", **where, text=text)]
        elif item.kind == "message":
            where = self._where(item, message_id)
            done = message_item(self._job_id, text, status, item.logprobs)
            events = [
                self._emit("response.output_text.done", **where, text=text, logprobs=item.logprobs),
                self._emit("response.content_part.done", **where, part=output_text(text, item.logprobs)),
            ]
        else:
            arguments = text or "{}"
            done = function_call_item(self._job_id, item.call_index, item.call_id, item.name, arguments, "completed")
            events = [
                self._emit(
                    "response.function_call_arguments.done",
                    item_id=done["id"],
                    output_index=item.output_index,
                    name=item.name,
                    arguments=arguments,
                )
            ]
        events.append(self._emit("response.output_item.done", output_index=item.output_index, item=done))
        return events, done

    # -- helpers ------------------------------------------------------------------------------

    def _open(self, kind: str) -> _Item:
        item = _Item(kind, output_index=len(self._items))
        self._items.append(item)
        self._passed_on = True
        return item

    def _where(self, item: _Item, item_id) -> dict[str, Any]:
        return {"item_id": item_id(self._job_id), "output_index": item.output_index, "content_index": 0}

    def _emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": event_type, "sequence_number": self._next_number, **fields}
        self._next_number += 1
        return event
