"""TokenizerManager stand-in (srt/managers/tokenizer_manager.py): streaming formats, n-children, aborts.

Output chunks are {"text", "output_ids", "meta_info": {"id", "finish_reason", "prompt_tokens",
"completion_tokens", ...}} plus "index" for n > 1 (:2480-2797); finish_reason is None while running,
then {"type": "stop", "matched": <token id | str>}, {"type": "length", "length": N} or
{"type": "abort", "message": ...} (schedule_batch.py:279-345).
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sglang import FLAVOR
from sglang.srt.managers.io_struct import EmbeddingReqInput

CANNED_ANSWER = "The capital of France is Paris. It is a lovely city with many museums, parks and cafes."
SAMPLING_KEYS = {
    "max_new_tokens", "min_new_tokens", "stop", "stop_token_ids", "temperature", "top_p", "top_k", "min_p",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "n", "ignore_eos", "skip_special_tokens",
    "sampling_seed", "json_schema", "regex", "ebnf", "logit_bias",
}  # fmt: skip


@dataclass
class GenerateRequest:
    """The fields of GenerateReqInput (io_struct.py:170+) that Engine.async_generate fills in here."""

    text: Any = None
    input_ids: Any = None
    sampling_params: dict = field(default_factory=dict)
    image_data: Any = None
    lora_path: Any = None
    stream: bool = False
    rid: Any = None
    return_logprob: bool = False
    top_logprobs_num: int = 0
    priority: Any = None


class SubprocessWatchdog:
    """Upstream's watchdog SIGQUITs the host when a child dies; only its stop() matters here."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


@dataclass
class _State:
    rid: str
    index: int
    answer_ids: list
    output_ids: list = field(default_factory=list)
    abort_requested: bool = False


class TokenizerManager:
    def __init__(self, server_args: Any, tokenizer: Any, context_len: int) -> None:
        self.server_args = server_args
        self.tokenizer = tokenizer
        self.context_len = context_len
        self.rid_to_state: dict[str, _State] = {}
        self.asyncio_tasks: set = set()
        self._subprocess_watchdog = SubprocessWatchdog()
        self.requests: list[GenerateRequest] = []  # what reached the "scheduler", for tests to inspect
        self.aborted: set[str] = set()

    def abort_request(self, rid: str = "", abort_all: bool = False) -> None:
        # Only rids the manager tracks are forwarded (:2241-2265): an n > 1 parent rid is a no-op.
        targets = list(self.rid_to_state.values()) if abort_all else [self.rid_to_state.get(rid)]
        for state in filter(None, targets):
            state.abort_requested = True
            self.aborted.add(state.rid)

    async def generate_request(self, obj: Any, request: Any = None):
        if isinstance(obj, EmbeddingReqInput):
            yield {"embedding": [sum(obj.input_ids) % 997 / 100.0], "meta_info": {"id": obj.rid or uuid.uuid4().hex}}
            return
        self.requests.append(obj)
        params = dict(obj.sampling_params)
        unknown = set(params) - SAMPLING_KEYS
        if unknown:
            raise TypeError(f"Unexpected keyword argument {sorted(unknown)[0]!r}")  # SamplingParams(**kwargs)
        if not 0 < params.get("repetition_penalty", 1.0) <= 2:
            raise ValueError("repetition_penalty must be in (0, 2]")
        if obj.lora_path is not None and obj.lora_path not in (self.server_args.lora_paths or {}):
            raise ValueError(f"Got LoRA adapter that has never been loaded: {obj.lora_path}")
        n = params.get("n", 1)
        if n == 1:
            rids = [obj.rid or uuid.uuid4().hex]
            if rids[0] in self.rid_to_state:
                raise ValueError("Duplicate request ID detected")
        else:
            rids = [uuid.uuid4().hex for _ in range(n)]  # regenerate_rid(): children get fresh ids
        states = [self._start(rid, index, params.get("json_schema")) for index, rid in enumerate(rids)]
        try:
            async for chunk in self._run(states, obj, params, n):
                yield chunk
        except BaseException:
            if FLAVOR == "upstream":  # _release_req_states_on_failure (:3850-3874); the fork has none
                for state in states:
                    if state.rid in self.rid_to_state:
                        self.abort_request(state.rid)
            raise

    def _start(self, rid: str, index: int, json_schema: str | None = None) -> _State:
        answer = CANNED_ANSWER if index == 0 else f"Option {index}: {CANNED_ANSWER}"
        if json_schema is not None:  # the grammar backend's output: JSON the schema accepts (an example of it)
            answer = json.dumps(_example(json.loads(json_schema)))
        answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        state = self.rid_to_state[rid] = _State(rid, index, answer_ids)
        return state

    async def _run(self, states, obj, params, n):
        prompt_tokens = len(obj.input_ids) if obj.input_ids is not None else len(self.tokenizer(obj.text)["input_ids"])
        incremental = bool(getattr(self.server_args, "incremental_streaming_output", False))
        ids_delta = incremental or bool(getattr(self.server_args, "stream_output", False))
        live = list(states)
        sent_text = {state.rid: "" for state in states}
        while live:
            await asyncio.sleep(0.002)  # one decode step
            for state in list(live):
                reason, text = self._step(state, params)
                if reason is not None:
                    live.remove(state)
                    del self.rid_to_state[state.rid]
                if not obj.stream and reason is None:
                    continue
                previous = sent_text[state.rid]
                sent_text[state.rid] = text
                meta = {
                    "id": state.rid,
                    "finish_reason": reason,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(state.output_ids),
                    "cached_tokens": 0,
                }
                if obj.return_logprob:  # (logprob, token id, text: None through Engine.async_generate), cumulative
                    meta["output_token_logprobs"] = [(-0.5, token, None) for token in state.output_ids]
                    meta["output_top_logprobs"] = [
                        [(-0.5, token, None)] + [(-3.0, other, None) for other in range(obj.top_logprobs_num - 1)]
                        for token in state.output_ids
                    ]
                if incremental and obj.stream:
                    chunk = {"text": text[len(previous):], "output_ids": state.output_ids[-1:], "meta_info": meta}
                elif ids_delta and obj.stream:  # the fork: cumulative text, incremental ids
                    chunk = {"text": text, "output_ids": state.output_ids[-1:], "meta_info": meta}
                else:
                    # the live list itself while running (:2657-2664); a copy at the end
                    ids = state.output_ids if reason is None else state.output_ids.copy()
                    chunk = {"text": text, "output_ids": ids, "meta_info": meta}
                if n > 1:
                    chunk["index"] = state.index
                yield chunk

    def _step(self, state: _State, params: dict):
        skip = params.get("skip_special_tokens", True)
        if state.abort_requested:
            return {"type": "abort", "message": "Abort in waiting queue"}, self.tokenizer.decode(state.output_ids, skip_special_tokens=skip)
        token = state.answer_ids[len(state.output_ids) % len(state.answer_ids)]
        state.output_ids.append(token)
        text = self.tokenizer.decode(state.output_ids, skip_special_tokens=skip)
        if token in set(params.get("stop_token_ids") or ()) and len(state.output_ids) > params.get("min_new_tokens", 0):
            return {"type": "stop", "matched": token}, text
        for stop in [params["stop"]] if isinstance(params.get("stop"), str) else params.get("stop") or ():
            if stop in text:
                return {"type": "stop", "matched": stop}, text[: text.index(stop)]  # the stop string is trimmed
        if len(state.output_ids) >= params.get("max_new_tokens", 128):
            return {"type": "length", "length": len(state.output_ids)}, text
        return None, text  # while running, text is untrimmed: it may end in part of a stop string


def _example(schema: dict) -> Any:
    """A small instance of a JSON schema (objects, arrays, anyOf, enums, the scalar types), standing in for
    what SGLang's grammar-constrained decoding would write."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example({**{k: v for k, v in schema.items() if k != "anyOf"}, **schema["anyOf"][0]})
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _example(properties[name]) for name in schema.get("required", properties)}
    if kind == "array":
        return [_example(schema.get("items", {})) for _ in range(max(1, schema.get("minItems", 1)))]
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "null": None}[kind]
