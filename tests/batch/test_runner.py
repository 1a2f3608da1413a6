"""The batch runner over a real echo worker: what it does when a line's answer cannot be kept, a line that
cannot be sent, the share's count when a batch stops, and the job key of a custom_id as long as the format
allows."""

import asyncio

import pytest

from api_client import AsyncInferQClient
from api_client.jobs import MAX_IDEMPOTENCY_KEY_CHARS, idempotent_job_id
from batch.fleet_share import FleetShare
from batch.lines import BatchLine
from batch.runner import BatchProgress, line_key, run_batch
from engines.errors import InvalidRequest

# Bounds for failure only: each wait ends as soon as what it waits for is there.
PATIENCE_S = 300


def _line(i: int, custom_id: str | None = None, text: str | None = None) -> BatchLine:
    messages = [{"role": "user", "content": text or f"line {i}"}]
    return BatchLine(custom_id=custom_id or f"l{i}", index=i, url="/v1/chat/completions", model="echo",
                     messages=messages)  # fmt: skip


async def test_an_answer_that_cannot_be_kept_stops_the_batch_instead_of_dropping_its_line(client_settings, echo_worker):
    kept: list[str] = []

    def on_result(line, job_id, record, error) -> None:
        if line.custom_id == "l2":
            raise OSError("No space left on device")  # the journal's disk, or Redis for a gateway
        kept.append(line.custom_id)

    async with AsyncInferQClient(settings=client_settings) as client:
        with pytest.raises(OSError, match="No space left"):  # a resume carries on from what was kept
            await run_batch(client, [_line(i) for i in range(6)], batch_id="batch-unkept", on_result=on_result,
                            progress=BatchProgress(total=6), window=1)  # fmt: skip
    assert kept == ["l0", "l1"]  # one line at a time: none after the failure ran


async def test_a_line_counted_in_as_the_batch_stops_is_counted_out_of_the_share(client_settings, echo_worker):
    # One row for the batch (an echo worker's 16 slots, 90 % kept for chats), a window of four: the runner waits
    # for l0's row, l0's answer cannot be kept, and the runner, woken by l0 leaving, counts l1 in and stops at
    # once, its task cancelled before it ever started.
    def on_result(line, job_id, record, error) -> None:
        raise OSError("No space left on device")

    async with AsyncInferQClient(settings=client_settings) as client:
        share = FleetShare(client, reserve=0.9)
        assert await share.limit("echo") == 1
        progress = BatchProgress(total=4)
        with pytest.raises(OSError, match="No space left"):
            await run_batch(client, [_line(i) for i in range(4)], batch_id="batch-stopped", on_result=on_result,
                            progress=progress, window=4, share=share)  # fmt: skip
        assert progress.in_flight == 0
        # and the share's row is free again: a later batch of the model on it runs (it waited for ever)
        answered = []

        def note(line, *_) -> None:
            answered.append(line.custom_id)

        later = run_batch(client, [_line(4), _line(5)], batch_id="batch-later", progress=BatchProgress(total=2),
                          on_result=note, window=4, share=share)  # fmt: skip
        await asyncio.wait_for(later, timeout=PATIENCE_S)
    assert answered == ["l4", "l5"]


async def test_a_line_holding_a_lone_surrogate_fails_by_its_field_and_the_batch_goes_on(client_settings, echo_worker):
    lines = [_line(0, custom_id="id\ud800"), _line(1, text="text \udfff"), _line(2)]  # JSON's "\\ud800" reads so
    ended = {}

    def on_result(line, job_id, record, error) -> None:
        ended[line.index] = (job_id, record, error)

    async with AsyncInferQClient(settings=client_settings) as client:
        progress = await run_batch(client, lines, batch_id="batch-surrogates", on_result=on_result,
                                   progress=BatchProgress(total=3), window=3)  # fmt: skip
    assert (progress.done, progress.failed) == (1, 2)
    for index, field in ((0, "custom_id"), (1, "messages.0.content")):
        job_id, record, error = ended[index]
        assert record is None and isinstance(error, InvalidRequest) and error.field == field
        assert "surrogate" in error.message
    assert ended[0][0] == idempotent_job_id(None, line_key("batch-surrogates", "id\ud800"))  # a job id, unsent
    assert ended[2][1].responses[0].response_text == "line 2"


def test_a_custom_id_too_long_for_a_key_is_hashed_into_one():
    longest = "x" * 512  # the batch format's bound
    key = line_key("batch_0123456789abcdef", longest)
    assert len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key == line_key("batch_0123456789abcdef", longest)
    assert key != line_key("batch_0123456789abcdef", "y" * 512)
    assert line_key("b", "short") == "batch:b:short"  # readable where it fits
    assert line_key("b", "\ud800").startswith("batch:b:sha256:")  # a key UTF-8 can encode, for its job id
