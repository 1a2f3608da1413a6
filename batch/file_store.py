"""Where a batch's files live (its input, output and error files), chosen by URL.

- `file:///path` or a plain path: a local directory, the embedded default; every gateway replica that drives
  batches must see the same directory (a shared volume). A file is written whole under a temporary name and
  renamed, so a reader never sees half a file and a writer killed midway leaves nothing under the real name.
- `s3://bucket/prefix`: any S3-compatible bucket, through s3fs (`pip install 'inferq[s3]'`), for a fleet of
  gateways on different hosts. Credentials and endpoint as every AWS tool reads them (`AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for MinIO and the like). An S3 PUT
  is atomic: a reader sees the old object or the new one.

`url` names the store; a batch remembers the store its files are in, and only a gateway using the same store
drives it (gateway/batch_coordinator.py).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from engines.errors import InvalidRequest

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")


def open_file_store(url: str) -> LocalFileStore | S3FileStore:
    scheme = urlparse(url).scheme
    if scheme == "s3":
        return S3FileStore(url)
    if scheme in ("", "file"):
        return LocalFileStore(url)
    raise InvalidRequest(f"{url!r}: a directory (file:// or a path) or s3://bucket/prefix", field="files_url")


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(f"{name!r} is not a stored file's name", field="file_id")
    return name


class LocalFileStore:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.root = Path(parsed.path if parsed.scheme == "file" else url).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    async def write(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self.root / _checked(name), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)

    async def read(self, name: str) -> bytes | None:
        try:
            return await asyncio.to_thread((self.root / _checked(name)).read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, name: str) -> None:
        await asyncio.to_thread((self.root / _checked(name)).unlink, missing_ok=True)

    async def aclose(self) -> None:
        return None


class S3FileStore:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise InvalidRequest(f"{url!r}: name the bucket (s3://bucket/prefix)", field="files_url")
        self.url = f"s3://{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        self._root = self.url.removeprefix("s3://")
        self._fs: Any = None
        self._session: Any = None

    async def _filesystem(self) -> Any:
        """s3fs's async filesystem, on this event loop (its session binds to the loop that opens it)."""
        if self._fs is None:
            import s3fs  # the s3 extra: only a gateway configured with a bucket needs it

            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            fs = s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True,
                                   client_kwargs={"endpoint_url": endpoint} if endpoint else {})  # fmt: skip
            self._session = await fs.set_session()
            self._fs = fs
        return self._fs

    async def write(self, name: str, data: bytes) -> None:
        await self._call("_pipe_file", name, data)

    async def read(self, name: str) -> bytes | None:
        try:
            return await self._call("_cat_file", name)
        except FileNotFoundError:
            return None

    async def delete(self, name: str) -> None:
        try:
            await self._call("_rm_file", name)
        except FileNotFoundError:
            pass

    async def _call(self, method: str, name: str, *args: Any) -> Any:
        """s3fs turns S3's answers into OSErrors, but passes botocore's own failures through (an endpoint that
        cannot be reached, a connection closed): those are an outage too, an OSError like a local disk's,
        which whoever waits on the store retries rather than counts against a batch."""
        from botocore.exceptions import BotoCoreError

        try:
            return await getattr(await self._filesystem(), method)(f"{self._root}/{_checked(name)}", *args)
        except BotoCoreError as error:
            raise ConnectionError(f"S3 at {self.url}: {error}") from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._fs = self._session = None


FileStore = LocalFileStore | S3FileStore
