"""A batch run's files: its output and error lines (OpenAI's format) and a manifest, beside the output.

The output files are the journal: a line is done once its output or error line is written, and `resume`
skips those. A run killed while writing leaves at most one torn last line, which is cut off on resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from batch.lines import json_lines


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
    # A digest of the input's lines as read: `resume` refuses an input that changed (its line numbers and
    # custom_ids would pair new requests with old answers).
    fingerprint: str | None = None


def dumps(line: dict[str, Any]) -> str:
    return json.dumps(line, ensure_ascii=False) + "\n"


def manifest_path(output: Path) -> Path:
    return output.with_name(f"{output.name}.batch.json")


class Journal:
    def __init__(self, output: Path, errors: Path) -> None:
        self.output, self.errors = output, errors
        self._files = {}

    def done(self) -> set[str]:
        """custom_ids of lines already answered or failed, and the ids of refused lines (`batch_req_line-N`):
        a refusal is its line's, not its custom_id's, which a refused duplicate shares with a line that runs."""
        found = set()
        for path in (self.output, self.errors):
            for line in _whole_lines(path):
                found.add(line["id"] if line["response"] is None else line["custom_id"])
        return found

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
