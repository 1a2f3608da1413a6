"""An event loop on a daemon thread, so sync code can drive async code (LLaMA-Factory's ChatModel way)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from tasks.errors import ClientClosed

T = TypeVar("T")

CLOSE_WAIT_S = 10.0  # how long closing a stream early may take (it cancels the job)


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="inferq-client-loop", daemon=True)
        self._waited: weakref.WeakSet[concurrent.futures.Future] = weakref.WeakSet()  # what callers wait on
        # A fork copies the loop but not its thread: the child's calls would wait for ever on a loop nothing runs.
        self._pid = os.getpid()
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Blocks the calling thread until the coroutine is done on the loop. A caller that stops waiting
        (Ctrl-C, its timeout) stops the coroutine too, as an awaiting task would."""
        future = asyncio.run_coroutine_threadsafe(self._usable(coro), self.loop)
        self._waited.add(future)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Awaits, from another event loop, a coroutine that must run on this one."""
        future = asyncio.run_coroutine_threadsafe(self._usable(coro), self.loop)
        self._waited.add(future)
        return await asyncio.wrap_future(future)

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._close_from_sync(agen)

    async def aiterate(self, agen: AsyncIterator[T]) -> AsyncIterator[T]:
        try:
            while True:
                try:
                    # a caller cancelled here cancels the step on the loop (wrap_future passes it on)
                    yield await self.run_async(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            await self.run_async(_aclose_when_idle(agen))

    def _usable(self, coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """`coro`, if this loop can still run it; otherwise ClientClosed, saying why (and `coro` closed unrun)."""
        if os.getpid() != self._pid:
            coro.close()
            raise ClientClosed("this client was made in another process (before a fork): make one in this process")
        if self.loop.is_closed():
            coro.close()
            raise ClientClosed("the client is closed")
        return coro

    def _close_from_sync(self, agen: AsyncIterator[Any]) -> None:
        """A consumer that stops early closes (and so cancels) the stream, and waits for that...

        ...unless this runs on the loop's own thread (the garbage collector finalizes an abandoned
        generator on whatever thread it happens to run, and waiting there would wait forever), or the
        loop is gone: an iterator finalized while the interpreter shuts down finds it closed, and a
        process never hangs at exit for a stream it left open.
        """
        if self.loop.is_closed() or not self._thread.is_alive() or os.getpid() != self._pid:
            return
        closing = asyncio.run_coroutine_threadsafe(_aclose_when_idle(agen), self.loop)
        if threading.current_thread() is not self._thread:
            with contextlib.suppress(concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                closing.result(timeout=CLOSE_WAIT_S)

    def close(self) -> None:
        """Stops the loop. Whatever still runs on it is cancelled first, so that a thread blocked in `run()`
        (a chat waiting for its answer while another thread closes the client) is woken, not left waiting. In a
        forked child it does nothing: the loop's thread, and what it held, are the parent's."""
        if self.loop.is_closed() or os.getpid() != self._pid:
            return
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            cancelling = asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop)
            with contextlib.suppress(concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                cancelling.result(timeout=CLOSE_WAIT_S)
        for future in list(self._waited):  # a task that did not end in time: its caller still wakes
            future.cancel()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_the_rest() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)


async def _aclose_when_idle(agen: AsyncIterator[Any]) -> None:
    """Closes a generator once a step of it that was cancelled has unwound (its cleanup awaits: it stops
    following the job, it cancels it); closing it meanwhile would fail with "already running"."""
    with contextlib.suppress(TimeoutError):  # one that never unwinds is left to the garbage collector
        async with asyncio.timeout(CLOSE_WAIT_S):
            while getattr(agen, "ag_running", False):
                await asyncio.sleep(0.01)
            await agen.aclose()
