"""The sync client against real workers (separate processes) on a real Redis."""

import time

import pytest

from api_client import InvalidRequest, JobCancelled, NoSuchModel
from tasks.schemas import FinalEvent, TokenEvent

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


def test_chat_returns_response_records(client, tiny_worker):
    [response] = client.chat(QUESTION, "tiny", max_new_tokens=12, **GREEDY)
    assert response.response_length == 12
    assert response.finish_reason == "length"
    assert response.prompt_length > 10


def test_joined_stream_equals_chat_and_every_sequence_number_arrives_once(client, tiny_worker):
    [response] = client.chat(QUESTION, "tiny", max_new_tokens=20, **GREEDY)
    handle = client.submit_chat(QUESTION, "tiny", max_new_tokens=20, **GREEDY)
    events = list(handle.events())
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], FinalEvent)
    tokens = [event for event in events if isinstance(event, TokenEvent)]
    assert "".join(event.text for event in tokens) == response.response_text
    assert sum(event.num_tokens for event in tokens) == 20
    assert "".join(client.stream_chat(QUESTION, "tiny", max_new_tokens=20, **GREEDY)) == response.response_text


def test_a_late_subscriber_gets_every_delta(client, tiny_worker):
    handle = client.submit_chat(QUESTION, "tiny", max_new_tokens=16, **GREEDY)
    record = handle.result(timeout=60)
    assert "".join(handle.stream()) == record.responses[0].response_text  # after the job finished
    mid = client.submit_chat(QUESTION, "tiny", max_new_tokens=200, **GREEDY)
    time.sleep(0.5)  # subscribe while the job is halfway through
    assert "".join(mid.stream()) == mid.result(timeout=60).responses[0].response_text


def test_record_carries_usage_timings_and_worker(client, tiny_worker):
    record = client.submit_chat(QUESTION, "tiny", max_new_tokens=5, **GREEDY).result(timeout=60)
    assert record.status == "succeeded" and record.kind == "chat"
    assert (record.model, record.engine, record.worker) == ("tiny", "huggingface", tiny_worker.hostname)
    assert record.usage.prompt_tokens == record.responses[0].prompt_length
    assert record.usage.completion_tokens == 5
    timings = record.timings
    assert timings.queued_at <= timings.started_at <= timings.first_token_at <= timings.finished_at


def test_n_answers(client, tiny_worker):
    responses = client.chat(QUESTION, "tiny", n=3, seed=1, max_new_tokens=8)
    assert len(responses) == 3
    assert len({r.response_text for r in responses}) > 1


def test_scores(client, tiny_scorer_worker):
    scores = client.get_scores(["Paris is the capital of France.", "ok"], "tiny-rm")
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert scores[0] != scores[1]


def test_cancel_mid_stream_keeps_the_text_so_far(client, tiny_worker):
    handle = client.submit_chat(QUESTION, "tiny", max_new_tokens=2000, **GREEDY)
    pieces = handle.stream()
    seen = [next(pieces) for _ in range(5)]
    handle.cancel()
    with pytest.raises(JobCancelled) as caught:
        handle.result(timeout=30)
    [response] = caught.value.record.responses
    assert response.finish_reason == "abort"
    assert response.response_text.startswith("".join(seen))
    assert 5 <= response.response_length < 2000
    assert caught.value.record.status == "cancelled"


def test_cancel_while_queued(client):
    handle = client.submit_chat(QUESTION, "nobody-serves-this", max_new_tokens=5)
    handle.cancel()
    with pytest.raises(JobCancelled, match="queued") as caught:
        handle.result(timeout=10)
    assert caught.value.record.responses is None


def test_job_for_an_unserved_model_expires_at_its_deadline(client, tiny_worker):
    started = time.monotonic()
    with pytest.raises(NoSuchModel) as caught:
        client.chat(QUESTION, "ghost-model", deadline_s=1.5)
    assert 1.4 < time.monotonic() - started < 10
    assert caught.value.field == "model"
    assert "ghost-model" in str(caught.value) and "tiny" in str(caught.value)
    assert caught.value.record.status == "expired"


@pytest.mark.parametrize(
    ("messages", "params", "field"),
    [
        ([{"role": "robot", "content": "x"}], {}, "messages.0.role"),
        ([], {}, "messages"),
        (QUESTION, {"temperature": -1}, "temperature"),
        (QUESTION, {"top_k": "many"}, "top_k"),
        (QUESTION, {"deadline_s": 0}, "deadline_s"),
        (QUESTION, {"priority": 12}, "priority"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(client, messages, params, field):
    with pytest.raises(InvalidRequest) as caught:
        client.submit_chat(messages, "tiny", **params)
    assert caught.value.field == field


def test_errors_found_by_the_worker_come_back_typed(client, tiny_worker):
    with pytest.raises(InvalidRequest) as caught:
        client.chat([{"role": "user", "content": "word " * 3000}], "tiny")
    assert caught.value.field == "messages"
    assert "context" in caught.value.message


def test_a_handle_can_be_found_again_by_id(client, tiny_worker):
    handle = client.submit_chat(QUESTION, "tiny", max_new_tokens=4, **GREEDY)
    again = client.find_job(handle.id)
    assert again is not None and again.result(timeout=60) == handle.result(timeout=60)
    assert client.find_job("no-such-job") is None


def test_streaming_a_job_for_an_unserved_model_ends_at_its_deadline(client):
    handle = client.submit_chat(QUESTION, "ghost-model", deadline_s=1)
    with pytest.raises(NoSuchModel):
        list(handle.stream())


def test_an_abandoned_stream_collected_on_the_client_loop_does_not_deadlock(client, tiny_worker):
    import gc

    abandoned = client.submit_chat(QUESTION, "tiny", max_new_tokens=2000).stream()
    next(abandoned)
    # Finalize it on the client's own loop thread, as the garbage collector may.
    client._loop.run(_collect(abandoned))
    del abandoned
    gc.collect()
    assert client.chat(QUESTION, "tiny", max_new_tokens=2)[0].response_length == 2


async def _collect(generator):
    generator.close()
