"""A job's events (its Redis replay log) as Responses API stream events, numbered so that any gateway
resumes any stream: the only place those events are made.

`sequence_number` is computed from the job's own `seq`, never counted by a reader: the events made from
job event `seq` are numbered `seq * SEQ_STRIDE + k` (k = 0, 1, ...; the two opening events take 0 and 1).
Every reader therefore gives every event the same number, and `starting_after=N` means "replay the job's
log and drop what is numbered N or less": nothing of a stream lives in a gateway's memory. Numbers grow
strictly but skip.

A job that restarts on another worker (its worker died) voids the text of the attempt before: a reader
that already passed on some of that text gets an `error` event and the stream ends (the response itself
goes on; GET it for the final answer). A reader arriving later follows the new attempt only.
"""

from __future__ import annotations

from typing import Any

from gateway.response_objects import message_id, message_item, output_text, response_object, terminal_status
from tasks.schemas import FinalEvent, JobMeta, JobRecord, RestartEvent, TokenEvent

# More than the most events one job event can make (a FinalEvent that opens and closes the message: 7).
SEQ_STRIDE = 10

_TERMINAL_EVENT = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
    # the Responses API has no cancelled event; the partial answer is what "incomplete" announces
    "cancelled": "response.incomplete",
}


class ResponseEventBuilder:
    def __init__(self, meta: JobMeta) -> None:
        self._meta = meta
        self._pieces: list[str] = []
        self._message_open = False
        self._message_closed = False
        self._next_number = 0
        self.ended = False

    def opening(self) -> list[dict[str, Any]]:
        return [
            self._emit("response.created", response=response_object(self._meta, None, "queued")),
            self._emit("response.in_progress", response=response_object(self._meta, None, "in_progress")),
        ]

    def on_event(self, event: TokenEvent | RestartEvent | FinalEvent) -> list[dict[str, Any]]:
        self._next_number = event.seq * SEQ_STRIDE
        if isinstance(event, TokenEvent):
            return self._on_token(event) if event.index == 0 else []
        if isinstance(event, RestartEvent):
            return self._on_restart()
        return self._on_final(event.record)

    def _on_token(self, event: TokenEvent) -> list[dict[str, Any]]:
        made = self._open_message()
        if event.text:
            made.append(self._delta(event.text))
        if event.finish_reason is not None:
            made += self._close_message("completed" if event.finish_reason == "stop" else "incomplete")
        return made

    def _on_restart(self) -> list[dict[str, Any]]:
        if not self._pieces:
            return []
        self.ended = True
        message = (
            "the job restarted on another worker: the text streamed so far is void; GET the response for the answer"
        )
        return [self._emit("error", code="job_restarted", message=message, param=None)]

    def _on_final(self, record: JobRecord) -> list[dict[str, Any]]:
        made: list[dict[str, Any]] = []
        if record.responses and not self._message_closed:
            # The log may hold no tokens (it expired, or the job never streamed): the record has the text.
            response = record.responses[0]
            made += self._open_message()
            missing = response.response_text.removeprefix("".join(self._pieces))
            if missing:
                made.append(self._delta(missing))
            made += self._close_message("completed" if response.finish_reason == "stop" else "incomplete")
        status = terminal_status(record)
        made.append(self._emit(_TERMINAL_EVENT[status], response=response_object(self._meta, record)))
        self.ended = True
        return made

    def _open_message(self) -> list[dict[str, Any]]:
        if self._message_open:
            return []
        self._message_open = True
        item = message_item(self._meta.job_id, "", "in_progress")
        return [
            self._emit("response.output_item.added", output_index=0, item=item),
            self._emit("response.content_part.added", **self._where(), part=output_text("")),
        ]

    def _delta(self, text: str) -> dict[str, Any]:
        self._pieces.append(text)
        return self._emit("response.output_text.delta", **self._where(), delta=text, logprobs=[])

    def _close_message(self, status: str) -> list[dict[str, Any]]:
        self._message_closed = True
        text = "".join(self._pieces)
        return [
            self._emit("response.output_text.done", **self._where(), text=text, logprobs=[]),
            self._emit("response.content_part.done", **self._where(), part=output_text(text)),
            self._emit("response.output_item.done", output_index=0, item=message_item(self._meta.job_id, text, status)),
        ]

    def _where(self) -> dict[str, Any]:
        return {"item_id": message_id(self._meta.job_id), "output_index": 0, "content_index": 0}

    def _emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": event_type, "sequence_number": self._next_number, **fields}
        self._next_number += 1
        return event
