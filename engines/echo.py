"""The `echo` engine: no model, no torch. It answers with the last user message, word by word.

Made for plumbing: the queue's tests and `inferq bench` measure inferq itself with it, not a model.
A word in the echoed message can steer it, so a test builds exactly the job it needs instead of
betting on how fast something runs:

- `[hold]`       stop there until the request is aborted (a job that is surely still running);
- `[wait:PATH]`  stop there until the file PATH exists (released by the test, from any process);
- `[touch:PATH]` create the file PATH there: every word before it has been taken from the engine (what a
                 test waits for before it acts on a job whose answer streams nowhere);
- `[fail]`       raise a RuntimeError (an unexpected exception inside an engine);
- `[timeout]`    raise a TimeoutError of the engine's own (a socket's), which is not the job's time limit;
- `[abort-fails]` the request's first abort raises (an engine whose abort fails), the next one works;
- `[dead]`       raise EngineDead (the engine cannot serve again);
- `[cancelled]`  raise asyncio.CancelledError from inside the engine (an executor shut down under a request);
- `[priority]`   answer `priority=N`, the request's priority (what the worker read off the job's message).

Served as `--engine echo --model echo` (any model name: nothing is loaded). `task: "score"` makes it a
scoring engine whose score is the number of words of each text. `answer: "..."` makes it answer that text
instead (word by word, the same directives apply): a scripted tool call (`<tool_call>{...}</tool_call>`)
or a thinking answer (`<think>...</think> ...`, with `reasoning: "think"`) drives the parsers end to end.
With `ignore_eos` or `min_tokens` it goes on past the end of its answer, repeating it, as a model would
ramble on. It has no logits: its logprobs are 0 (each word is certain), and what works on logits
(penalties, min_p, logit_bias, constrained output, a forced tool_choice) it refuses by name.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import zlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from engines.base import BaseEngine, ChatRequest
from engines.errors import EngineDead, InvalidRequest
from engines.logprobs import TokenLogprob, TopLogprob
from engines.media import MediaPolicy
from engines.prompt import output_habits
from engines.schemas import Delta, EngineArgs, GenerationParams, parse_engine_args
from engines.stopping import StopStringMatcher

WAIT_POLL_S = 0.02


class EchoEngineArgs(EngineArgs):
    task: Literal["chat", "score"] = "chat"
    tokens_per_s: float = Field(0, ge=0, description="pace of the answer; 0: as fast as the event loop goes")
    max_model_len: int | None = Field(1 << 20, ge=1)
    max_running: int = Field(64, ge=1, description="requests it reports it runs at once (it runs any number)")
    answer: str | None = Field(None, description="a scripted answer, instead of the last user message")


class EchoTokenizer:
    """Words are tokens; a word's id is a hash of it (0 is the end-of-turn token), so nothing grows."""

    eos_token_id = 0
    chat_template = "role: content, one line a turn"

    def apply_chat_template(
        self, conversation: list[dict[str, Any]], add_generation_prompt: bool = False, **_: Any
    ) -> str:
        # one line a turn: a message's own line breaks are only spaces between its words
        lines = [f"{turn['role']}: {' '.join(str(turn['content']).split())}" for turn in conversation]
        return "\n".join([*lines, "assistant:"] if add_generation_prompt else lines)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [token_id(word) for word in text.split()]}


def token_id(word: str) -> int:
    return zlib.crc32(word.encode()) % (2**31 - 1) + 1


class EchoEngine(BaseEngine):
    name = "echo"

    def __init__(self, model: str, **engine_args: Any) -> None:
        args = parse_engine_args(EchoEngineArgs, engine_args)
        self.model_path = model
        self.can_generate = args.task == "chat"
        self.tokenizer = EchoTokenizer()
        self.context_length = args.max_model_len
        self.capacity = args.max_running
        self.stop_token_ids = (EchoTokenizer.eos_token_id,)
        self.default_params = args.default_params or GenerationParams()
        self.media_policy = MediaPolicy(remote_urls=args.media_remote_urls, local_paths=args.media_local_paths)
        self.tool_format, self.thinks = output_habits(self.tokenizer, args.tool_format, args.reasoning)
        self.refused_params = frozenset(
            {"presence_penalty", "frequency_penalty", "min_p", "logit_bias", "response_format", "tool_choice"}
        )
        self._answer = args.answer.split() if args.answer is not None else None
        self._step_s = 1 / args.tokens_per_s if args.tokens_per_s else 0.0
        self._aborted: dict[str, asyncio.Event] = {}
        self._failing_aborts: set[str] = set()  # requests whose next abort raises ([abort-fails])

    async def generate(self, request: ChatRequest) -> AsyncIterator[Delta]:
        if request.request_id in self._aborted:
            raise InvalidRequest(f"request {request.request_id!r} is already running", field="request_id")
        aborted = self._aborted[request.request_id] = asyncio.Event()
        words = self._answer if self._answer is not None else _last_user_turn(request.prompt_text)
        words = [f"priority={request.priority}" if word == "[priority]" else word for word in words]
        if "[abort-fails]" in words:
            self._failing_aborts.add(request.request_id)
        params = request.params
        matchers = [StopStringMatcher(params.stop) for _ in range(params.n)]
        live = set(range(params.n))
        try:
            for position in range(params.max_new_tokens):
                word = _word_at(words, position, params.ignore_eos or position < params.min_tokens)
                await self._obey(word, aborted)
                if aborted.is_set():
                    for index in sorted(live):
                        yield Delta(index, "", (), "abort")
                    return
                last = position == params.max_new_tokens - 1
                for index in sorted(live):
                    matcher = matchers[index]
                    if word is None:  # the whole message is echoed: end of turn
                        eos = (EchoTokenizer.eos_token_id,)
                        yield Delta(index, matcher.flush(), eos, "stop", _certain("", eos[0], params.logprobs))
                        live.discard(index)
                        continue
                    text, stopped = matcher.feed(word if position == 0 else f" {word}", position >= params.min_tokens)
                    token = (token_id(word),)
                    certain = _certain(word, token[0], params.logprobs)
                    if stopped:
                        yield Delta(index, text, token, "stop", certain)
                        live.discard(index)
                    elif last:
                        yield Delta(index, text + matcher.flush(), token, "length", certain)
                    else:
                        yield Delta(index, text, token, logprobs=certain)
                if not live:
                    return
        finally:
            self._aborted.pop(request.request_id, None)
            self._failing_aborts.discard(request.request_id)

    async def _obey(self, word: str | None, aborted: asyncio.Event) -> None:
        if self._step_s:
            await asyncio.sleep(self._step_s)
        else:
            await asyncio.sleep(0)  # one step, one turn of the loop, as a real engine yields per step
        if word == "[hold]":
            await aborted.wait()
        elif word is not None and word.startswith("[wait:") and word.endswith("]"):
            path = word[len("[wait:") : -1]
            while not os.path.exists(path) and not aborted.is_set():
                await asyncio.sleep(WAIT_POLL_S)
        elif word is not None and word.startswith("[touch:") and word.endswith("]"):
            pathlib.Path(word[len("[touch:") : -1]).touch()
        elif word == "[fail]":
            raise RuntimeError("echo: the [fail] directive")
        elif word == "[timeout]":
            raise TimeoutError("echo: the [timeout] directive")
        elif word == "[dead]":
            raise EngineDead("echo: the [dead] directive")
        elif word == "[cancelled]":
            raise asyncio.CancelledError("echo: the [cancelled] directive")

    async def abort(self, request_id: str) -> None:
        if request_id in self._failing_aborts:
            self._failing_aborts.discard(request_id)
            raise RuntimeError("echo: the [abort-fails] directive")
        if request_id in self._aborted:
            self._aborted[request_id].set()

    async def _score(self, texts: list[str], max_length: int | None) -> list[float]:
        return [float(len(text.split()[:max_length])) for text in texts]


def _word_at(words: list[str], position: int, go_on: bool) -> str | None:
    """The answer's word at `position`; None past its end (end of turn), unless it must go on: then it repeats."""
    if position < len(words):
        return words[position]
    return words[position % len(words)] if go_on and words else None


def _certain(word: str, token: int, top: int | None) -> tuple[TokenLogprob, ...]:
    """The echo engine knows its next word for sure: log probability 0, and no other word is possible."""
    if top is None:
        return ()
    alternatives = [TopLogprob(token=word, token_id=token, logprob=0.0)] if top else []
    return (TokenLogprob(token=word, token_id=token, logprob=0.0, top_logprobs=alternatives),)


def _last_user_turn(prompt_text: str) -> list[str]:
    """The last user turn's words; a raw prompt (a completion: no turns) is echoed whole."""
    turns = [line for line in prompt_text.split("\n") if line.startswith("user: ")]
    if turns:
        return turns[-1].removeprefix("user: ").split()
    return [] if prompt_text.rstrip().endswith("assistant:") else prompt_text.split()
