"""A stand-in for SGLang's in-process engine, for tests of inferq's SGLang and KTransformers engines.

It follows the signatures and output formats of sglang 0.5.23, read in its wheel:
  srt/entrypoints/engine.py      Engine(**kwargs), async_generate(...), shutdown()
  srt/managers/tokenizer_manager.py  generate_request(obj, request), abort_request(rid, abort_all),
                                 rid_to_state, context_len, asyncio_tasks, _subprocess_watchdog
  srt/managers/io_struct.py      EmbeddingReqInput
  srt/server_args.py             ServerArgs (a msgspec Struct: unknown fields raise TypeError)
With STAND_IN_SGLANG_FLAVOR=kt it behaves as the sglang-kt 0.7.2 fork where that differs (a dataclass
ServerArgs with kt_* fields, `stream_output` instead of `incremental_streaming_output`, and no abort
of a request whose stream the caller closes).

Instead of a model it "generates" a canned answer through the model's real tokenizer, one token per
step, and it keeps the habits that matter to a host process: importing the engine module replaces the
event-loop policy, launching forces the spawn start method, re-configures the root logger, starts a
child process, and shutdown() kills every child of the host.
"""

import os

FLAVOR = os.environ.get("STAND_IN_SGLANG_FLAVOR", "upstream")
__version__ = "0.5.23" if FLAVOR == "upstream" else "0.0.0.dev0"


def __getattr__(name):
    # sglang.Engine is a LazyImport in the real package: `import sglang` does not import engine.py
    if name == "Engine":
        from sglang.srt.entrypoints.engine import Engine

        return Engine
    raise AttributeError(name)
