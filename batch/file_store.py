"""Where a batch's files live (its input, output and error files), chosen by URL.

`file:///path` or a plain path: a local directory, the embedded default; every gateway replica that drives
batches must see the same directory (a shared volume). Files are written whole under a temporary name and
renamed, so a reader never sees half a file and a writer killed midway leaves nothing under the real name.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from urllib.parse import urlparse

from engines.errors import InvalidRequest

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        parsed = urlparse(url)
        if parsed.scheme not in ("", "file"):
            raise InvalidRequest(f"{url!r}: only a local directory (file:// or a path) is supported", field="files_url")
        root = Path(parsed.path if parsed.scheme == "file" else url).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def _path(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("."):
            raise InvalidRequest(f"{name!r} is not a stored file's name", field="file_id")
        return self.root / name

    async def write(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(name), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)

    async def read(self, name: str) -> bytes | None:
        path = self._path(name)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._path(name).unlink, missing_ok=True)
