"""The one place generation parameters are resolved, for every engine.

Layers, lowest first: `BUILTIN_DEFAULTS` (LLaMA-Factory's `GeneratingArguments`), the engine's own
defaults (worker config), then the request. Engines only map a `ResolvedParams` onto their backend;
none of them reads `GenerationParams` itself, so they cannot drift apart the way LLaMA-Factory's did.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.constraints import MAX_SCHEMA_CHARS, DecodingConstraint, JsonObjectFormat, JsonSchemaFormat
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
    logprobs: int | None = None  # None: none; k: each token's log probability and k alternatives
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    min_p: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0
    constraint: DecodingConstraint | None = None  # what the output must be (JSON, a forced tool call)

    @property
    def penalises_occurrences(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty)


def resolve(
    request: GenerationParams,
    engine_defaults: GenerationParams,
    *,
    prompt_length: int,
    context_length: int,
    stop_token_ids: tuple[int, ...],
    vocab_size: int | None = None,
    tool_constraint: DecodingConstraint | None = None,
) -> ResolvedParams:
    """`tool_constraint`: what a forced `tool_choice` makes of the output (engines/tools/choice.py)."""
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
    max_new_tokens = min(_max_new_tokens(layers, prompt_length), room)
    min_tokens = pick("min_tokens") or 0
    if min_tokens > max_new_tokens:
        raise InvalidRequest(f"more than the {max_new_tokens} new tokens the answer may have", field="min_tokens")
    constraint = _constraint(pick("response_format"), tool_constraint)
    ignore_eos = bool(pick("ignore_eos"))
    if constraint is not None and (min_tokens or ignore_eos):
        # Once the grammar's output is whole it allows only the end, which these forbid: every token would be
        # masked (greedy then writes token 0 past the JSON; sampling fails on NaN). Asked for, a refusal; an
        # engine's default for them does not apply to a constrained answer.
        if request.min_tokens or request.ignore_eos:
            raise InvalidRequest(
                f"cannot be combined with {constraint.reason}: a constrained answer ends where its grammar does",
                field="min_tokens" if request.min_tokens else "ignore_eos",
            )
        min_tokens, ignore_eos = 0, False
    logit_bias = tuple(sorted((pick("logit_bias") or {}).items()))
    if vocab_size is not None and logit_bias and logit_bias[-1][0] >= vocab_size:
        raise InvalidRequest(f"token id {logit_bias[-1][0]} is past the vocabulary ({vocab_size})", field="logit_bias")
    return ResolvedParams(
        do_sample=do_sample,
        temperature=temperature if do_sample else 0.0,
        top_p=pick("top_p") if do_sample else 1.0,
        top_k=pick("top_k") if do_sample else 0,
        max_new_tokens=max_new_tokens,
        repetition_penalty=pick("repetition_penalty"),
        n=n,
        seed=pick("seed"),
        stop=tuple(pick("stop") or ()),
        stop_token_ids=stop_token_ids,
        skip_special_tokens=pick("skip_special_tokens"),
        logprobs=pick("logprobs"),
        presence_penalty=pick("presence_penalty") or 0.0,
        frequency_penalty=pick("frequency_penalty") or 0.0,
        min_p=pick("min_p") or 0.0,
        logit_bias=logit_bias,
        ignore_eos=ignore_eos,
        min_tokens=min_tokens,
        constraint=constraint,
    )


def _constraint(response_format, tool_constraint: DecodingConstraint | None) -> DecodingConstraint | None:
    wants_json = isinstance(response_format, JsonObjectFormat | JsonSchemaFormat)
    if wants_json and tool_constraint is not None:
        raise InvalidRequest("a forced tool call already decides the output; drop one of them", field="response_format")
    if isinstance(response_format, JsonSchemaFormat):
        constraint = DecodingConstraint.from_schema(response_format.json_schema, "response_format")
    elif isinstance(response_format, JsonObjectFormat):
        constraint = DecodingConstraint(None, "response_format")
    else:
        constraint = tool_constraint
    if constraint is not None and constraint.schema_json is not None and len(constraint.schema_json) > MAX_SCHEMA_CHARS:
        field = "response_format" if constraint.reason == "response_format" else "tools"
        raise InvalidRequest(f"a schema of more than {MAX_SCHEMA_CHARS} characters", field=field)
    return constraint


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
