"""One step of the HF engine's batches (engines/hf/stepper.py): what fails in a step fails only what it
belongs to."""

import sys

import torch

from engines.errors import EngineError, EngineOverloaded
from engines.hf import batch
from engines.hf.stepper import Stepper

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


def _stepper(engine) -> Stepper:
    return Stepper(engine.model, engine.tokenizer, has_adapters=False, grammars=None)


def _tokens(outputs, request_id) -> list[int]:
    return [t for rid, made in outputs if rid == request_id for t in made.token_ids]


def _run_out(stepper, outputs) -> list:
    while stepper.num_rows:
        outputs += stepper.step([], set()).outputs
    return outputs


def _alone(engine, request) -> list[int]:
    stepper = _stepper(engine)
    return _tokens(_run_out(stepper, stepper.step([request], set()).outputs), request.request_id)


def test_a_request_whose_join_runs_out_of_memory_fails_alone(tiny_engine, monkeypatch):
    running = tiny_engine.prepare_chat(QUESTION, max_new_tokens=8, request_id="running", **GREEDY)
    joiner = tiny_engine.prepare_chat(
        [{"role": "user", "content": "And of Italy?"}], max_new_tokens=8, request_id="joiner", **GREEDY
    )
    stepper = _stepper(tiny_engine)
    outputs = stepper.step([running], set()).outputs
    pad, calls = batch._left_pad, []

    def out_of_memory_on_the_second_layer(states, width):
        calls.append(width)
        if len(calls) == 5:  # past the first layer (its keys and values took four pads): mid-merge
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return pad(states, width)

    monkeypatch.setattr(batch, "_left_pad", out_of_memory_on_the_second_layer)
    outputs += stepper.step([joiner], set()).outputs
    assert len(calls) == 5  # the merge ran into the fault
    monkeypatch.setattr(batch, "_left_pad", pad)
    assert stepper.request_ids() == {"running"}
    outputs = _run_out(stepper, outputs)
    [(request_id, error)] = [(rid, made) for rid, made in outputs if isinstance(made, EngineError)]
    assert request_id == "joiner" and isinstance(error, EngineOverloaded) and "injected" in str(error)
    assert _tokens(outputs, "running") == _alone(tiny_engine, running)  # its cache as it was


def test_a_failed_group_is_retried_one_by_one_with_its_memory_let_go(tiny_engine, monkeypatch):
    """Each retry runs with no exception being handled: the failed attempt's traceback (its forward's frames,
    the group's cache and activations) is gone, so an out-of-memory group's requests can each fit alone."""
    group = [tiny_engine.prepare_chat(QUESTION, max_new_tokens=4, request_id=f"r{i}", **GREEDY) for i in range(2)]
    prefill, handled_during_retries = batch.DecodeBatch.prefill, []

    def out_of_memory_for_the_group(model, requests, *args):
        if len(requests) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        handled_during_retries.append(sys.exc_info()[1])
        return prefill(model, requests, *args)

    monkeypatch.setattr(batch.DecodeBatch, "prefill", staticmethod(out_of_memory_for_the_group))
    stepper = _stepper(tiny_engine)
    outputs = _run_out(stepper, stepper.step(group, set()).outputs)
    assert handled_during_retries == [None, None]
    assert all(_tokens(outputs, r.request_id) == _alone(tiny_engine, r) for r in group)


def test_rows_whose_cache_could_not_be_selected_fail_and_the_step_goes_on(tiny_engine, monkeypatch):
    """Dropping an ended row copies every layer's cache; out of memory there, the batch's rows fail (their cache
    half-selected), and the step still prefills what it admitted."""
    stepper = _stepper(tiny_engine)
    ending = tiny_engine.prepare_chat(QUESTION, max_new_tokens=8, request_id="ending", **GREEDY)
    staying = tiny_engine.prepare_chat(QUESTION, max_new_tokens=8, request_id="staying", **GREEDY)
    arriving = tiny_engine.prepare_chat(QUESTION, max_new_tokens=3, request_id="arriving", **GREEDY)
    stepper.step([ending, staying], set())
    select, failures = batch.DecodeBatch.filter, []

    def out_of_memory_once(self):
        if not failures:
            failures.append(True)
            self.sequences = [s for s in self.sequences if s.finish_reason is None]  # as far as filter gets
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        select(self)

    monkeypatch.setattr(batch.DecodeBatch, "filter", out_of_memory_once)
    outputs = stepper.step([arriving], {"ending"}).outputs
    errors = {rid: made for rid, made in outputs if isinstance(made, EngineError)}
    assert list(errors) == ["staying"] and isinstance(errors["staying"], EngineOverloaded)
    assert _tokens(_run_out(stepper, outputs), "arriving") == _alone(tiny_engine, arriving)
