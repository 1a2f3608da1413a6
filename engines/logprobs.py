"""Log probabilities of generated tokens, as every engine reports them.

`logprob` is the token's log probability under the model's raw distribution (before temperature, top-k/p
and penalties: vLLM's default `raw_logprobs`), so a number does not change with sampling settings;
`top_logprobs` are the most likely tokens at that position, most likely first. OpenAI's -9999.0 stands
for a probability of zero (a token a grammar ruled out), since JSON has no infinity.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

MAX_TOP_LOGPROBS = 20  # OpenAI's and vLLM's default cap
IMPOSSIBLE = -9999.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class TopLogprob(_Model):
    token: str
    token_id: int
    logprob: float


class TokenLogprob(_Model):
    token: str
    token_id: int
    logprob: float
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


def finite(logprob: float) -> float:
    return logprob if math.isfinite(logprob) else IMPOSSIBLE
