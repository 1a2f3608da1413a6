import json

import pytest

from engines.errors import InvalidRequest
from tasks.schemas import (
    STREAM_EVENT,
    ChatJob,
    FinalEvent,
    JobRecord,
    PlainToken,
    ScoreJob,
    Timings,
    TokenEvent,
    parse_job,
)


def test_a_chat_payload_round_trips_through_json():
    job = parse_job(
        {"model": "m", "queued_at": 1.0, "messages": [{"role": "user", "content": "hi"}], "params": {"n": 2}}, "chat"
    )
    assert isinstance(job, ChatJob) and job.params.num_return_sequences == 2
    assert ChatJob.model_validate_json(job.model_dump_json()) == job


@pytest.mark.parametrize(
    ("payload", "kind", "field"),
    [
        ([1, 2], "chat", "payload"),
        ({"model": "m", "queued_at": 1, "messages": []}, "chat", "messages"),
        ({"model": "m m", "queued_at": 1, "messages": [{"role": "user", "content": "x"}]}, "chat", "model"),
        ({"model": "m:1", "queued_at": 1, "texts": ["a"]}, "score", "model"),
        ({"model": "m", "queued_at": 1, "texts": ["a", ""]}, "score", "texts.1"),
        ({"model": "m", "queued_at": 1, "texts": ["a"], "max_length": 0}, "score", "max_length"),
        ({"model": "m", "queued_at": 1, "texts": ["a"], "kind": "chat"}, "score", "kind"),
    ],
)
def test_bad_payloads_name_the_field(payload, kind, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_job(payload, kind)
    assert caught.value.field == field


def test_score_payload():
    job = parse_job({"model": "rm", "queued_at": 1, "texts": ["a", "b"]}, "score")
    assert isinstance(job, ScoreJob) and job.texts == ["a", "b"]


def test_stream_events_are_told_apart_by_type():
    token = TokenEvent(seq=1, attempt=1, index=0, text="hi", num_tokens=1)
    record = JobRecord(job_id="j", kind="chat", status="succeeded", model="m", timings=Timings(queued_at=0))
    final = FinalEvent(seq=2, record=record)
    assert STREAM_EVENT.validate_json(token.model_dump_json()) == token
    assert STREAM_EVENT.validate_json(final.model_dump_json()) == final


@pytest.mark.parametrize("text", ["", "plain", ' "quoted" \\ back\nslash\ttab', "é 漢字 \U0001f600", "\x00\x1f"])
def test_a_plain_token_is_written_as_the_token_event_it_is(text):
    plain = PlainToken(seq=7, attempt=2, index=1, text=text, num_tokens=3)
    expected = TokenEvent(seq=7, attempt=2, index=1, text=text, num_tokens=3)
    assert STREAM_EVENT.validate_json(plain.json()) == expected
    assert json.loads(plain.json()) == json.loads(expected.model_dump_json(exclude_none=True))
