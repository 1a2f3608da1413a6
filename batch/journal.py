"""A batch run's files: its output and error lines (OpenAI's format) and a manifest, beside the output.

The output files are the journal: a line is done once its output or error line is written, and `resume`
skips those. A run killed while writing leaves at most one torn last line, which is cut off on resume.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from batch.lines import json_lines

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Manifest(BaseModel):
    """What `inferq batch resume` needs to carry on with the same batch (and the same job ids)."""

    batch_id: str
    input: str
    model: str | None
    dataset_dir: str | None = None
    formatting: str | None = None
    score: bool = False
    errors: str
    predictions: str | None = None
    window: int
    # Where the batch was first run: image paths a dataset gives relative to it are read from there on resume too
    # (a manifest of an older version has none: the directory the resume runs in).
    working_dir: str = Field(default_factory=os.getcwd)
    # A digest of the input's lines as read: `resume` refuses an input that changed (its line numbers and
    # custom_ids would pair new requests with old answers).
    fingerprint: str | None = None


def dumps(line: dict[str, Any]) -> str:
    # A lone surrogate (a custom_id or a prompt the input spelt `\ud800`) is written as its JSON escape, as the
    # input had it: raw, UTF-8 cannot write it, and the line that holds it would stop every run and resume.
    text = _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found[0]):04x}", json.dumps(line, ensure_ascii=False))
    return text + "\n"


def manifest_path(output: Path) -> Path:
    return output.with_name(f"{output.name}.batch.json")


def lock_path(output: Path) -> Path:
    """The file a run or resume holds locked (flock) while it writes the batch's files; never removed, since
    a lock file removed while another process waits on it would let a third one lock a new file beside it."""
    return output.with_name(f"{output.name}.batch.lock")


class DoneLines(NamedTuple):
    """What a resume skips, apart: a refusal is its line's (`batch_req_line-N`), not its custom_id's, which a
    refused duplicate shares with a line that runs; and a custom_id may itself read `batch_req_line-N`."""

    custom_ids: set[str]  # lines answered or failed
    refusal_ids: set[str]  # lines refused before they ran


class Journal:
    def __init__(self, output: Path, errors: Path) -> None:
        self.output, self.errors = output, errors
        self._files = {}

    def done(self) -> DoneLines:
        done = DoneLines(custom_ids=set(), refusal_ids=set())
        for path in (self.output, self.errors):
            for line in _whole_lines(path):
                if line["response"] is None:
                    done.refusal_ids.add(line["id"])
                else:
                    done.custom_ids.add(line["custom_id"])
        return done

    def answered(self) -> dict[str, dict[str, Any]]:
        return {line["custom_id"]: line for line in _whole_lines(self.output)}

    def write(self, line: dict[str, Any], succeeded: bool) -> None:
        path = self.output if succeeded else self.errors
        if path not in self._files:
            self._files[path] = path.open("a", encoding="utf-8")
        self._files[path].write(dumps(line))
        self._files[path].flush()

    def close(self) -> None:
        for file in self._files.values():
            file.close()


def _whole_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    raw = path.read_bytes()
    whole = raw[: raw.rfind(b"\n") + 1]
    if len(whole) < len(raw):  # a run killed mid-write: its torn line is cut off (that line runs again, once)
        with path.open("r+b") as file:
            file.truncate(len(whole))
            os.fsync(file.fileno())
    return [json.loads(line) for line in json_lines(whole.decode()) if line.strip()]
