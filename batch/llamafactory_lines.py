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

from batch.dataset_media import with_media
from batch.lines import BatchLine, LineError, json_lines
from engines.errors import InvalidRequest
from engines.schemas import Message

Columns = dict[str, str | None]  # LLaMA-Factory's column attribute (`prompt`) -> the example's key, or None

# LLaMA-Factory's DatasetAttr defaults: what an entry without `columns` reads (system, history and media: none).
# An entry with `columns` reads only the ones it maps, and one with `tags` only the tags it names.
ENTRY_COLUMNS: Columns = {"prompt": "instruction", "query": "input", "response": "output", "history": None,
                          "messages": "conversations", "system": None, "images": None, "videos": None,
                          "audios": None}  # fmt: skip
ENTRY_TAGS: Columns = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                       "system_tag": "system"}  # fmt: skip
# A file without dataset_info.json (LLaMA-Factory reads none): the columns its data/README.md lists for each
# format, and the README's "OpenAI format", a sharegpt file of `messages` with role and content.
FILE_COLUMNS: Columns = {**ENTRY_COLUMNS, "system": "system", "history": "history", "images": "images",
                         "videos": "videos", "audios": "audios"}  # fmt: skip
OPENAI_FILE_COLUMNS: Columns = {**FILE_COLUMNS, "messages": "messages"}
OPENAI_TAGS: Columns = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                        "system_tag": "system"}  # fmt: skip


def dataset_lines(
    source: str,
    model: str,
    *,
    dataset_dir: str | None = None,
    formatting: str | None = None,
    score: bool = False,
    working_dir: str | None = None,
) -> Iterator[BatchLine | LineError]:
    """`source`: a dataset file, or (with `dataset_dir`) the name of an entry in its dataset_info.json.
    `working_dir`: where image paths not in the media directory are read from (default: here)."""
    if dataset_dir is None:
        path, media_dir = Path(source), Path(source).parent
        formatting, columns, tags = _file_conventions(path, formatting)
    else:
        path, formatting, columns, tags = _entry(source, Path(dataset_dir))
        media_dir = Path(dataset_dir)  # LLaMA-Factory's media_dir defaults to its dataset_dir
    for index, example in enumerate(_examples(path)):
        custom_id = f"example-{index}"
        try:
            if isinstance(example, ValueError):
                raise InvalidRequest(f"not JSON: {example}")
            if not isinstance(example, dict):
                raise InvalidRequest("an example must be a JSON object")
            if formatting == "sharegpt":
                prompt, label = _sharegpt(example, columns, tags)
            else:
                prompt, label = _alpaca(example, columns)
            prompt = with_media(example, prompt, columns, media_dir, Path(working_dir or Path.cwd()))
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


def _entry(source: str, dataset_dir: Path) -> tuple[Path, str, Columns, Columns]:
    info_path = dataset_dir / "dataset_info.json"
    info = json.loads(info_path.read_text())
    if source not in info:
        raise InvalidRequest(f"no entry {source!r} in {info_path}", field="dataset")
    entry = info[source]
    if "file_name" not in entry:
        raise InvalidRequest(f"entry {source!r} has no file_name (hub datasets are not read)", field="dataset")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise InvalidRequest(f"formatting {formatting!r} is neither alpaca nor sharegpt", field="dataset")
    columns = _mapped(entry, "columns", ENTRY_COLUMNS, source)
    tags = _mapped(entry, "tags", ENTRY_TAGS, source)
    needed = {"prompt or query": columns["prompt"] or columns["query"]}
    if formatting == "sharegpt":
        needed = {"messages": columns["messages"], "role_tag": tags["role_tag"], "content_tag": tags["content_tag"]}
    for name, mapped in needed.items():  # without it not one example could be read
        if mapped is None:
            raise InvalidRequest(f"entry {source!r} maps no {name}", field="dataset")
    return dataset_dir / entry["file_name"], formatting, columns, tags


def _mapped(entry: dict[str, Any], key: str, defaults: Columns, source: str) -> Columns:
    """LLaMA-Factory's `DatasetAttr.join`: with `columns` (or `tags`) given, what it leaves out is None."""
    if key not in entry:
        return defaults
    given = entry[key]
    if not isinstance(given, dict) or not all(isinstance(name, str) for name in given.values()):
        raise InvalidRequest(f"entry {source!r}: {key} must map names to names", field="dataset")
    return {name: given.get(name) for name in defaults}


def _file_conventions(path: Path, formatting: str | None) -> tuple[str, Columns, Columns]:
    """A file's format (`formatting`, else guessed by its first example) and the columns and tags it uses."""
    first = next(_examples(path), None)
    keys = first if isinstance(first, dict) else {}
    conversations, messages = "conversations" in keys, "messages" in keys
    formatting = formatting or ("sharegpt" if conversations or messages else "alpaca")
    if formatting == "sharegpt" and messages and not conversations:
        return formatting, OPENAI_FILE_COLUMNS, OPENAI_TAGS
    return formatting, FILE_COLUMNS, ENTRY_TAGS


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


def _text(example: dict[str, Any], column: str | None) -> str | None:
    value = None if column is None else example.get(column)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("must be a string", field=column)
    return value or None


def _alpaca(example: dict[str, Any], columns: Columns) -> tuple[list[Message], str | None]:
    instruction, query = _text(example, columns["prompt"]), _text(example, columns["query"])
    if instruction is None and query is None:
        raise InvalidRequest("the example has no prompt", field=columns["prompt"] or columns["query"])
    messages = []
    if system := _text(example, columns["system"]):
        messages.append(Message(role="system", content=system))
    history = columns["history"]
    for turn, pair in enumerate((example.get(history) if history is not None else None) or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise InvalidRequest("each turn must be [query, response]", field=f"{history}.{turn}")
        messages += [Message(role="user", content=pair[0]), Message(role="assistant", content=pair[1])]
    messages.append(Message(role="user", content="\n".join(part for part in (instruction, query) if part)))
    return messages, _text(example, columns["response"])


def _sharegpt(example: dict[str, Any], columns: Columns, tags: Columns) -> tuple[list[Message], str | None]:
    turns = example.get(columns["messages"])
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("must be a non-empty list of turns", field=columns["messages"])
    named = ((tags["user_tag"], "user"), (tags["assistant_tag"], "assistant"), (tags["system_tag"], "system"))
    roles = {tag: role for tag, role in named if tag is not None}
    messages = []
    for number, turn in enumerate(turns):
        field = f"{columns['messages']}.{number}"
        role = roles.get(turn.get(tags["role_tag"])) if isinstance(turn, dict) else None
        content = turn.get(tags["content_tag"]) if isinstance(turn, dict) else None
        if role is None or not isinstance(content, str):
            raise InvalidRequest(f"needs {tags['role_tag']} (one of {', '.join(roles)}) and a string "
                                 f"{tags['content_tag']}", field=field)  # fmt: skip
        messages.append(Message(role=role, content=content))
    # as LLaMA-Factory does: a first system turn is the system prompt, and the system column is read without one
    if messages[0].role != "system" and (system := _text(example, columns["system"])):
        messages.insert(0, Message(role="system", content=system))
    if messages[-1].role == "assistant":
        return messages[:-1], messages[-1].content
    return messages, None
