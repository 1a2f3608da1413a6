"""The echo engine's own behaviour: its answer, its directives, its scoring task and its pace argument.
What it promises like every engine (stop strings, abort, refusals) is tested in test_contract.py."""

import asyncio

import pytest

from engines import load_engine
from engines.errors import EngineDead, InvalidRequest
from engines.schemas import Delta


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_the_answer_is_the_last_user_message_word_by_word(echo_engine):
    messages = [*ask("an old question"), {"role": "assistant", "content": "an old answer"}, *ask("one two  three")]
    [response] = await echo_engine.chat(messages)
    # three words and the end-of-turn token
    assert (response.response_text, response.response_length, response.finish_reason) == ("one two three", 4, "stop")
    assert [piece async for piece in echo_engine.stream_chat(messages)] == ["one", " two", " three"]


async def test_every_sequence_of_an_n_request_echoes(echo_engine):
    answers = await echo_engine.chat(ask("one two"), n=3)
    assert [answer.response_text for answer in answers] == ["one two"] * 3


@pytest.mark.parametrize("directive", ["[hold]", "[wait:{missing_file}]"])
async def test_a_held_request_runs_until_it_is_aborted(echo_engine, tmp_path, directive):
    request = echo_engine.prepare_chat(ask(f"before {directive.format(missing_file=tmp_path / 'never')} after"))
    deltas = echo_engine.generate(request)
    assert (await anext(deltas)).text == "before"
    held = asyncio.ensure_future(anext(deltas))
    # A whole request runs, one loop turn per word, while this one has not taken its next step.
    [other] = await echo_engine.chat(ask("a b c d e f g h"))
    assert other.finish_reason == "stop" and not held.done()
    await echo_engine.abort(request.request_id)
    assert await held == Delta(0, "", (), "abort")
    assert [delta async for delta in deltas] == []


async def test_wait_goes_on_once_its_file_exists(echo_engine, tmp_path):
    release = tmp_path / "release"
    deltas = echo_engine.generate(echo_engine.prepare_chat(ask(f"before [wait:{release}] after")))
    assert (await anext(deltas)).text == "before"
    waiting = asyncio.ensure_future(anext(deltas))
    await echo_engine.chat(ask("a b c d e f g h"))
    assert not waiting.done()
    release.touch()
    assert (await waiting).text == f" [wait:{release}]"  # the directive is a word of the answer too
    rest = [delta async for delta in deltas]
    assert [(delta.text, delta.finish_reason) for delta in rest] == [(" after", None), ("", "stop")]


async def test_touch_creates_its_file_once_the_words_before_it_were_taken(echo_engine, tmp_path):
    reached = tmp_path / "reached"
    deltas = echo_engine.generate(echo_engine.prepare_chat(ask(f"before [touch:{reached}] after")))
    assert (await anext(deltas)).text == "before" and not reached.exists()
    assert (await anext(deltas)).text == f" [touch:{reached}]" and reached.exists()


async def test_fail_raises_a_runtime_error_and_the_engine_keeps_serving(echo_engine):
    with pytest.raises(RuntimeError, match=r"\[fail\]"):
        await echo_engine.chat(ask("before [fail] after"))
    [response] = await echo_engine.chat(ask("still serving"))
    assert response.response_text == "still serving"


async def test_dead_raises_engine_dead():
    engine = load_engine("echo", "echo")  # its own: an engine that raised EngineDead is not used again
    with pytest.raises(EngineDead, match=r"\[dead\]"):
        await engine.chat(ask("before [dead] after"))


async def test_the_score_task_scores_each_text_by_its_words():
    scorer = load_engine("echo", "echo", task="score")
    assert not scorer.can_generate
    assert await scorer.get_scores(["one two three", "one"]) == [3.0, 1.0]
    assert await scorer.get_scores(["one two three", "one"], max_length=2) == [2.0, 1.0]
    with pytest.raises(InvalidRequest, match="use get_scores"):
        await scorer.chat(ask("one two"))


async def test_a_paced_engine_gives_the_same_answer():
    paced = load_engine("echo", "echo", tokens_per_s=1000)
    [response] = await paced.chat(ask("one two three"))
    assert (response.response_text, response.finish_reason) == ("one two three", "stop")


@pytest.mark.parametrize(("engine_args", "field"), [({"tokens_per_s": -1}, "tokens_per_s"), ({"task": "x"}, "task")])
def test_bad_engine_arguments_are_refused_by_name(engine_args, field):
    with pytest.raises(InvalidRequest) as caught:
        load_engine("echo", "echo", **engine_args)
    assert caught.value.field == f"engine_args.{field}"
