"""LLaMA-Factory datasets as batch lines: the alpaca and sharegpt formats, read from a file or from an entry
of a `dataset_info.json` (its `file_name`, `formatting`, `columns` and `tags`, as LLaMA-Factory reads them).

As LLaMA-Factory's `scripts/vllm_infer.py` does, an example's last assistant turn is its label and what
comes before it is the prompt; an alpaca example's prompt is its instruction and input joined by a newline,
after its history. Each example's custom_id is `example-<its index>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batch.lines import BatchLine, LineError, json_lines
from engines.errors import InvalidRequest
from engines.schemas import Message

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                  "history": "history"}  # fmt: skip
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}  # fmt: skip


def dataset_lines(
    source: str, model: str, *, dataset_dir: str | None = None, formatting: str | None = None, score: bool = False
) -> Iterator[BatchLine | LineError]:
    """`source`: a dataset file, or (with `dataset_dir`) the name of an entry in its dataset_info.json."""
    path, formatting, columns, tags = _resolve(source, dataset_dir, formatting)
    for index, example in enumerate(_examples(path)):
        custom_id = f"example-{index}"
        try:
            if isinstance(example, ValueError):
                raise InvalidRequest(f"not JSON: {example}")
            if not isinstance(example, dict):
                raise InvalidRequest("an example must be a JSON object")
            if formatting == "sharegpt":
                prompt, label = _sharegpt(example, {**SHAREGPT_COLUMNS, **columns}, {**SHAREGPT_TAGS, **tags})
            else:
                prompt, label = _alpaca(example, {**ALPACA_COLUMNS, **columns})
            yield _line(custom_id, index, model, prompt, label, score)
        except InvalidRequest as error:
            yield LineError(custom_id=custom_id, index=index, message=error.message, param=error.field)


def _line(custom_id: str, index: int, model: str, prompt: list[Message], label: str | None, score: bool) -> BatchLine:
    if not score:
        return BatchLine(custom_id=custom_id, index=index, url="/v1/chat/completions", model=model,
                         messages=prompt, label=label)  # fmt: skip
    if label is None:
        raise InvalidRequest("scoring an example needs its answer (the last assistant turn)", field="response")
    conversation = [*prompt, Message(role="assistant", content=label)]
    return BatchLine(custom_id=custom_id, index=index, url="/v1/score", model=model,
                     conversations=[conversation], label=label)  # fmt: skip


def _resolve(
    source: str, dataset_dir: str | None, formatting: str | None
) -> tuple[Path, str, dict[str, str], dict[str, str]]:
    if dataset_dir is None:
        return Path(source), formatting or _guess(Path(source)), {}, {}
    info_path = Path(dataset_dir) / "dataset_info.json"
    info = json.loads(info_path.read_text())
    if source not in info:
        raise InvalidRequest(f"no entry {source!r} in {info_path}", field="dataset")
    entry = info[source]
    if "file_name" not in entry:
        raise InvalidRequest(f"entry {source!r} has no file_name (hub datasets are not read)", field="dataset")
    found = entry.get("formatting", "alpaca")
    if found not in ("alpaca", "sharegpt"):
        raise InvalidRequest(f"formatting {found!r} is neither alpaca nor sharegpt", field="dataset")
    return Path(dataset_dir) / entry["file_name"], found, entry.get("columns", {}), entry.get("tags", {})


def _guess(path: Path) -> str:
    first = next(_examples(path), None)
    return "sharegpt" if isinstance(first, dict) and ("conversations" in first or "messages" in first) else "alpaca"


def _examples(path: Path) -> Iterator[Any]:
    """A JSON list, or JSON lines (each bad line an example that fails on its own)."""
    text = path.read_text()
    if text.lstrip().startswith("["):
        yield from json.loads(text)
        return
    for raw in json_lines(text):
        if raw.strip():
            try:
                yield json.loads(raw)
            except ValueError as error:
                yield error  # refused as that example's error


def _text(example: dict[str, Any], column: str, field: str) -> str | None:
    value = example.get(column)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("must be a string", field=field)
    return value or None


def _alpaca(example: dict[str, Any], columns: dict[str, str]) -> tuple[list[Message], str | None]:
    instruction = _text(example, columns["prompt"], columns["prompt"])
    query = _text(example, columns["query"], columns["query"])
    if instruction is None and query is None:
        raise InvalidRequest("the example has no prompt", field=columns["prompt"])
    messages = []
    if system := _text(example, columns["system"], columns["system"]):
        messages.append(Message(role="system", content=system))
    for turn, pair in enumerate(example.get(columns["history"]) or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise InvalidRequest("each turn must be [query, response]", field=f"{columns['history']}.{turn}")
        messages += [Message(role="user", content=pair[0]), Message(role="assistant", content=pair[1])]
    messages.append(Message(role="user", content="\n".join(part for part in (instruction, query) if part)))
    return messages, _text(example, columns["response"], columns["response"])


def _sharegpt(
    example: dict[str, Any], columns: dict[str, str], tags: dict[str, str]
) -> tuple[list[Message], str | None]:
    turns = example.get(columns["messages"])
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("must be a non-empty list of turns", field=columns["messages"])
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system"}
    messages = []
    if system := _text(example, columns["system"], columns["system"]):
        messages.append(Message(role="system", content=system))
    for number, turn in enumerate(turns):
        field = f"{columns['messages']}.{number}"
        role = roles.get(turn.get(tags["role_tag"])) if isinstance(turn, dict) else None
        content = turn.get(tags["content_tag"]) if isinstance(turn, dict) else None
        if role is None or not isinstance(content, str):
            raise InvalidRequest(f"needs {tags['role_tag']} (one of {', '.join(roles)}) and a string "
                                 f"{tags['content_tag']}", field=field)  # fmt: skip
        messages.append(Message(role=role, content=content))
    if messages[-1].role == "assistant":
        return messages[:-1], messages[-1].content
    return messages, None
