"""The sync facade's loop (api_client/loop_thread.py) and who keeps it: a client nobody holds still serves the
stream or handle it gave out, a forked child and a closed client are told ClientClosed instead of waiting for
ever, and a client that failed to build leaves no thread behind."""

import gc
import os
import signal
import threading

import pytest

from api_client import ClientClosed, InferQClient


def ask(text):
    return [{"role": "user", "content": text}]


def _handle_of_a_client_nobody_holds(settings):
    return InferQClient(settings=settings).submit_chat(ask("kept alive"), "echo")


def test_a_stream_or_a_handle_keeps_the_client_that_gave_it_out(client_settings, echo_worker):
    # The client was collected at once, and its loop closed under the stream: "Event loop is closed".
    assert "".join(InferQClient(settings=client_settings).stream_chat(ask("one two three"), "echo")) == "one two three"
    handle = _handle_of_a_client_nobody_holds(client_settings)
    gc.collect()
    assert handle.result(timeout=120).responses[0].response_text == "kept alive"  # a bound for failure only


def test_a_forked_child_is_told_the_client_is_its_parents(client_settings, echo_worker):
    client = InferQClient(settings=client_settings)
    child = os.fork()
    if child == 0:  # the child: one call, then out, whatever happens (no pytest teardown here)
        signal.alarm(120)  # a bound for failure only: a hang ends the child by SIGALRM
        try:
            client.workers()
            code = 1  # answered from a loop no thread runs in this process?
        except ClientClosed as error:
            code = 0 if "before a fork" in error.message else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(child, 0)  # it waited for ever on the parent's loop before
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.workers()  # the parent's client is untouched
    client.close()


def test_a_closed_client_says_so(client_settings):
    client = InferQClient(settings=client_settings)
    client.close()
    with pytest.raises(ClientClosed, match="the client is closed"):  # a RuntimeError of asyncio's, before
        client.workers()


def test_a_client_that_fails_to_build_leaves_no_thread_behind():
    def loops() -> int:
        return sum(thread.name == "inferq-client-loop" for thread in threading.enumerate())

    before = loops()
    with pytest.raises(ValueError):
        InferQClient("http://not-redis")
    assert loops() == before
