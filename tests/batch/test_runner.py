"""The batch runner over a real echo worker: what it does when a line's answer cannot be kept, and the job key
of a custom_id as long as the format allows."""

import pytest

from api_client import AsyncInferQClient
from api_client.jobs import MAX_IDEMPOTENCY_KEY_CHARS
from batch.lines import BatchLine
from batch.runner import BatchProgress, line_key, run_batch


def _line(i: int) -> BatchLine:
    messages = [{"role": "user", "content": f"line {i}"}]
    return BatchLine(custom_id=f"l{i}", index=i, url="/v1/chat/completions", model="echo", messages=messages)


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


def test_a_custom_id_too_long_for_a_key_is_hashed_into_one():
    longest = "x" * 512  # the batch format's bound
    key = line_key("batch_0123456789abcdef", longest)
    assert len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key == line_key("batch_0123456789abcdef", longest)
    assert key != line_key("batch_0123456789abcdef", "y" * 512)
    assert line_key("b", "short") == "batch:b:short"  # readable where it fits
