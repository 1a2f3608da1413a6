"""What a request may constrain its output to, and the one constraint a decoder enforces.

A request asks for JSON (`response_format`: any JSON object, or one matching a schema) or forces a tool
call (`tool_choice`: "required" or a named function, which become JSON schemas in engines/tools/choice.py).
Either way a backend sees one `DecodingConstraint`: JSON text that matches a schema, or any JSON object.
Each backend enforces it its own way (the HF engine with xgrammar, vLLM and SGLang with their structured
outputs); a backend that cannot refuses the request by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ConstraintReason = Literal["response_format", "tool_choice"]

# Characters of a JSON schema: a grammar is compiled from it on the worker, per request.
MAX_SCHEMA_CHARS = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True)


class TextFormat(_Model):
    type: Literal["text"] = "text"


class JsonObjectFormat(_Model):
    type: Literal["json_object"] = "json_object"


class JsonSchemaFormat(_Model):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any] = Field(alias="schema")
    name: str | None = Field(None, max_length=64)
    description: str | None = None
    strict: bool | None = None


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


@dataclass(frozen=True)
class DecodingConstraint:
    """JSON text matching `schema_json` (a schema as JSON text: hashable, a grammar cache key), or any JSON
    object when it is None."""

    schema_json: str | None
    reason: ConstraintReason

    @property
    def schema(self) -> dict[str, Any] | None:
        return None if self.schema_json is None else json.loads(self.schema_json)

    @classmethod
    def from_schema(
        cls, schema: dict[str, Any], reason: Literal["response_format", "tool_choice"]
    ) -> DecodingConstraint:
        return cls(json.dumps(schema, separators=(",", ":")), reason)
