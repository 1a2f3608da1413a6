"""OpenAI parameters no inferq engine can honour: refused with a 400 naming the field, never ignored.

A value that changes nothing (`store: false` on chat, `service_tier: "auto"`, `metadata: {}`) is accepted, so
clients that always send their defaults keep working. Parameters some engines honour and others cannot are
refused by the engine that cannot (engines/base.py: refused_params), with the same 400.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


class OpenAIRequest(BaseModel):
    # Unknown keys are refused too: a field the gateway does not know is a field it would ignore. Types are
    # strict (no "0.5" for a number, no true for an integer) and numbers finite.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def unsupported(*neutral_values: Any) -> Any:
    """The type of a field inferq cannot honour, which accepts only null and `neutral_values`."""

    def refuse(value: Any) -> Any:
        if value is None or any(value == neutral for neutral in neutral_values):
            return value
        raise ValueError("inferq's engines cannot honour this parameter; leave it out")

    return Annotated[Any, AfterValidator(refuse)]


NOTHING = unsupported({}, [])
