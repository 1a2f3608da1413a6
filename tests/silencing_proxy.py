"""A TCP proxy to Redis whose connections a test can silence: a partition as TCP sees it (no reset, ever)."""

import asyncio
from urllib.parse import urlsplit


class SilencingProxy:
    """A TCP proxy to Redis whose open connections can go silent: bytes are dropped both ways and the
    sockets stay open, as when a host vanishes (no reset ever comes). New connections pass, unless told."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname, parts.port or 6379)
        self._credentials = parts.netloc.rpartition("@")[0]
        self._db = parts.path
        self._live: list[dict[str, bool]] = []
        self._pipes: set[asyncio.Task] = set()
        self.bytes_from_redis = 0
        self._new_silent = False
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> "SilencingProxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://{self._credentials}@127.0.0.1:{port}{self._db}"
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def silence(self, new_connections_too: bool = False) -> None:
        """`new_connections_too`: a whole partition, where a new connection is accepted and then hears nothing."""
        for connection in self._live:
            connection["silent"] = True
        self._new_silent = new_connections_too

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        connection = {"silent": self._new_silent}
        self._live.append(connection)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if not connection["silent"]:
                    if source is upstream_reader:
                        self.bytes_from_redis += len(data)
                    sink.write(data)
                    await sink.drain()

        pipes = {
            asyncio.ensure_future(pipe(reader, upstream_writer)),
            asyncio.ensure_future(pipe(upstream_reader, writer)),
        }
        self._pipes |= pipes
        await asyncio.gather(*pipes, return_exceptions=True)
        for sink in (writer, upstream_writer):
            sink.close()
