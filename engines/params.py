"""The one place generation parameters are resolved, for every engine.

Layers, lowest first: `BUILTIN_DEFAULTS` (LLaMA-Factory's `GeneratingArguments`), the engine's own
defaults (worker config), then the request. Engines only map a `ResolvedParams` onto their backend;
none of them reads `GenerationParams` itself, so they cannot drift apart the way LLaMA-Factory's did.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.errors import InvalidRequest
from engines.schemas import GenerationParams

# A temperature this small is greedy (vLLM's _SAMPLING_EPS): dividing logits by 1e-300 overflows to inf and
# NaN, which would fail the sampling step of every request sharing the batch.
GREEDY_BELOW_TEMPERATURE = 1e-5

BUILTIN_DEFAULTS = GenerationParams(
    do_sample=True,
    temperature=0.95,
    top_p=0.7,
    top_k=50,
    max_new_tokens=1024,
    repetition_penalty=1.0,
    length_penalty=1.0,
    num_return_sequences=1,
    skip_special_tokens=True,
)


@dataclass(frozen=True)
class ResolvedParams:
    do_sample: bool
    temperature: float  # 0.0 exactly when greedy
    top_p: float
    top_k: int  # 0 = no top-k
    max_new_tokens: int
    repetition_penalty: float
    n: int
    seed: int | None
    stop: tuple[str, ...]
    stop_token_ids: tuple[int, ...]  # the model's end-of-turn tokens
    skip_special_tokens: bool


def resolve(
    request: GenerationParams,
    engine_defaults: GenerationParams,
    *,
    prompt_length: int,
    context_length: int,
    stop_token_ids: tuple[int, ...],
) -> ResolvedParams:
    layers = (request, engine_defaults, BUILTIN_DEFAULTS)

    def pick(name: str):
        return next((value for layer in layers if (value := getattr(layer, name)) is not None), None)

    n = pick("num_return_sequences")
    do_sample = pick("do_sample")
    temperature = pick("temperature")
    if temperature < GREEDY_BELOW_TEMPERATURE:
        temperature = 0.0
    if n > 1:
        # n identical greedy answers are useless: LLaMA-Factory samples instead, and so do we.
        do_sample, temperature = True, temperature or 1.0
    if temperature == 0:
        do_sample = False
    if pick("length_penalty") != 1.0:
        raise InvalidRequest(
            "only affects beam search, which no inferq engine runs; leave it at 1.0", field="length_penalty"
        )
    room = context_length - prompt_length
    if room < 1:
        raise InvalidRequest(
            f"the prompt is {prompt_length} tokens and the model's context holds {context_length}", field="messages"
        )
    return ResolvedParams(
        do_sample=do_sample,
        temperature=temperature if do_sample else 0.0,
        top_p=pick("top_p") if do_sample else 1.0,
        top_k=pick("top_k") if do_sample else 0,
        max_new_tokens=min(_max_new_tokens(layers, prompt_length), room),
        repetition_penalty=pick("repetition_penalty"),
        n=n,
        seed=pick("seed"),
        stop=tuple(pick("stop") or ()),
        stop_token_ids=stop_token_ids,
        skip_special_tokens=pick("skip_special_tokens"),
    )


def _max_new_tokens(layers: tuple[GenerationParams, ...], prompt_length: int) -> int:
    # Within a layer max_new_tokens wins over max_length; a request's max_length beats a default max_new_tokens.
    for layer in layers:
        if layer.max_new_tokens is not None:
            return layer.max_new_tokens
        if layer.max_length is not None:
            if layer.max_length <= prompt_length:
                raise InvalidRequest(
                    f"{layer.max_length} leaves no room after a {prompt_length}-token prompt", field="max_length"
                )
            return layer.max_length - prompt_length
    raise AssertionError("BUILTIN_DEFAULTS sets max_new_tokens")
