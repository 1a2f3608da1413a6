"""A finished job's answers as token events, for a stream whose job's log held none of their tokens.

A job's token log lives `stream_ttl_s` (an hour by default); its record and an idempotency key live a day.
A stream opened after the log expired (a retried request, a late reader) would otherwise get the final
event alone: no text, no finish reason. Its answers come from the record instead, one event each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tasks.schemas import FinalEvent, JobRecord, RestartEvent, TokenEvent, ToolCallDelta

JobEvent = TokenEvent | RestartEvent | FinalEvent
RECORD_SEQ = 0  # the seq of an answer told from the record: a log's events count from 1


async def with_unstreamed_answers(events: AsyncIterator[JobEvent]) -> AsyncIterator[JobEvent]:
    """`events`, with each answer whose tokens never came told whole just before the final event."""
    streamed: set[int] = set()
    async for event in events:
        if isinstance(event, TokenEvent):
            streamed.add(event.index)
        elif isinstance(event, FinalEvent) and event.record.error is None:
            for token in answers_as_tokens(event.record, streamed):
                yield token
        yield event


def answers_as_tokens(record: JobRecord, streamed: set[int]) -> list[TokenEvent]:
    return [
        TokenEvent(
            seq=RECORD_SEQ,
            attempt=record.attempt,
            index=index,
            text=response.response_text,
            num_tokens=response.response_length,
            finish_reason=response.finish_reason,
            reasoning=response.reasoning_text,
            tool_calls=[
                ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
                for i, call in enumerate(response.tool_calls)
            ]
            if response.tool_calls
            else None,
            logprobs=response.logprobs,
        )
        for index, response in enumerate(record.responses or ())
        if index not in streamed
    ]
