"""SGLang's request and output formats, and inferq's: pure functions, tested without SGLang.

Written against SGLang 0.5.23 (python/sglang/srt/...) and its KTransformers fork sglang-kt 0.7.2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engines.errors import EngineError, InvalidRequest
from engines.logprobs import TokenLogprob, TopLogprob, finite
from engines.params import ResolvedParams
from engines.schemas import FinishReason
from engines.stopping import StopStringMatcher


def sampling_params(params: ResolvedParams, *, seeds_honoured: bool) -> dict[str, Any]:
    """The `sampling_params` dict of `Engine.async_generate` (srt/sampling/sampling_params.py)."""
    if params.seed is not None and not seeds_honoured:
        # SGLang accepts `sampling_seed` and ignores it unless deterministic inference is on.
        raise InvalidRequest(
            "SGLang honours seeds only with engine_args.sglang_config.enable_deterministic_inference=true",
            field="seed",
        )
    if params.min_tokens and params.stop:
        # SGLang's min_new_tokens only holds the end-of-turn tokens back; its stop strings end an answer at once.
        raise InvalidRequest("SGLang does not hold stop strings back for min_tokens; send one or the other",
                             field="min_tokens")  # fmt: skip
    mapped = {
        "max_new_tokens": params.max_new_tokens,
        "min_new_tokens": params.min_tokens,
        "temperature": params.temperature,  # below 1e-6 SGLang samples greedily
        "top_p": params.top_p,
        "top_k": params.top_k or -1,  # -1: all tokens
        "min_p": params.min_p,
        "repetition_penalty": params.repetition_penalty,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "n": params.n,
        "stop": list(params.stop) or None,
        # SGLang's ignore_eos passes EOS but still stops on stop_token_ids: none then
        "stop_token_ids": [] if params.ignore_eos else list(params.stop_token_ids),
        "ignore_eos": params.ignore_eos,
        "skip_special_tokens": params.skip_special_tokens,
    }
    if params.seed is not None:
        mapped["sampling_seed"] = params.seed  # SGLang's key; `seed` is not one
    if params.logit_bias:
        mapped["logit_bias"] = {str(token): bias for token, bias in params.logit_bias}  # string keys, as SGLang's
    if params.constraint is not None:
        # SGLang takes the schema as JSON text; its grammar backend is xgrammar, as the HF engine's
        mapped["json_schema"] = params.constraint.schema_json or '{"type": "object"}'
    return mapped


def token_logprobs(meta_info: dict[str, Any], seen: int, top: int) -> tuple[tuple[TokenLogprob, ...], int]:
    """The logprobs of a chunk's new tokens from SGLang's meta_info (`output_token_logprobs`: (logprob, token
    id, text) per token, `output_top_logprobs`: a list of those per position), which are cumulative unless
    the server streams increments; `seen` is how many were taken already. Returns them and the new count."""
    chosen = meta_info.get("output_token_logprobs") or []
    tops = meta_info.get("output_top_logprobs") or [[] for _ in chosen]
    new = list(zip(chosen, tops, strict=True))[seen:] if len(chosen) >= seen else list(zip(chosen, tops, strict=True))
    made = tuple(
        TokenLogprob(
            token=text or "",
            token_id=token_id,
            logprob=finite(logprob),
            top_logprobs=[
                TopLogprob(token=other_text or "", token_id=other, logprob=finite(value))
                for value, other, other_text in (alternatives or [])[:top]
            ],
        )
        for (logprob, token_id, text), alternatives in new
    )
    return made, seen + len(made)


def finish_reason(value: Any) -> FinishReason | None:
    """SGLang's `meta_info["finish_reason"]`: None while running, then {"type": "stop"|"length"|"abort", ...}.

    (LLaMA-Factory compares that dict to the string "stop" and so reports "length" for every answer.)
    """
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else value
    if kind in ("stop", "length", "abort"):
        return kind
    raise EngineError(f"SGLang ended a request with an unknown finish_reason {value!r}")


@dataclasses.dataclass
class StreamMode:
    """Which of SGLang's streamed fields are increments rather than everything so far.

    Upstream streams cumulative text and ids unless `incremental_streaming_output`; the sglang-kt fork
    always streams cumulative text and, with `stream_output`, incremental ids.
    """

    text_is_delta: bool
    ids_are_delta: bool

    @classmethod
    def of(cls, server_args: Any) -> StreamMode:
        incremental = bool(getattr(server_args, "incremental_streaming_output", False))
        return cls(
            text_is_delta=incremental, ids_are_delta=incremental or bool(getattr(server_args, "stream_output", False))
        )


class SequenceStream:
    """One of a request's n answers: SGLang's chunks in, true deltas out.

    Stop strings go through the shared matcher too: a partial stop string that SGLang streamed before
    trimming it never reaches a client.
    """

    def __init__(self, mode: StreamMode, stop: tuple[str, ...]) -> None:
        self._mode = mode
        self._text_seen = 0
        self._ids_seen = 0
        self._emitted = 0  # characters given out
        self._matcher = StopStringMatcher(stop) if stop else None

    def feed(self, chunk: dict[str, Any]) -> tuple[str, tuple[int, ...], FinishReason | None]:
        raw_reason = chunk["meta_info"].get("finish_reason")
        reason = finish_reason(raw_reason)
        whole = text = chunk.get("text") or ""
        if not self._mode.text_is_delta:
            # A final text can be shorter than an earlier one (SGLang trims a matched stop string).
            text, self._text_seen = text[self._text_seen :], max(self._text_seen, len(text))
        output_ids = list(chunk.get("output_ids") or ())  # upstream streams a live reference: copy it
        if not self._mode.ids_are_delta:
            output_ids, self._ids_seen = output_ids[self._ids_seen :], max(self._ids_seen, len(output_ids))
        if self._matcher is not None:
            if _matched_stop_string(raw_reason):
                text = self._after_sglangs_stop(whole, text, raw_reason["matched"])
            else:
                text, hit = self._matcher.feed(text)
                if hit:
                    reason = "stop"
                elif reason is not None:
                    text += self._matcher.flush()  # what was held back turned out to be no stop string
        self._emitted += len(text)
        return text, tuple(output_ids), reason

    def _after_sglangs_stop(self, whole: str, delta: str, matched: str) -> str:
        """The rest of an answer SGLang ended at a stop string it trimmed: what the matcher held back is the
        answer's unless it was that stop string's beginning."""
        held = self._matcher.flush()
        if not self._mode.text_is_delta:
            return whole[self._emitted :]  # the final text is the answer, trimmed
        pending = held + delta
        start = next((k for k in range(min(len(matched), len(pending)), 0, -1) if pending.endswith(matched[:k])), 0)
        return pending[: len(pending) - start]


def _matched_stop_string(raw_reason: Any) -> bool:
    # {"type": "stop", "matched": "<the string>"}; an end-of-turn token matches as an int
    return isinstance(raw_reason, dict) and isinstance(raw_reason.get("matched"), str)


def server_arg_names(server_args_class: type) -> set[str]:
    """Upstream's ServerArgs is a msgspec Struct, the fork's a dataclass."""
    fields = getattr(server_args_class, "__struct_fields__", None)
    if fields is not None:
        return set(fields)
    return {field.name for field in dataclasses.fields(server_args_class)}


def check_overrides(overrides: dict[str, Any], known: set[str], engine_args_field: str) -> None:
    for name in overrides:
        if name not in known:
            raise InvalidRequest(
                "not a ServerArgs field of this SGLang", field=f"engine_args.{engine_args_field}.{name}"
            )
