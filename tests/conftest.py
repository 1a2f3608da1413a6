"""Session-wide models and engines. Slow things (model conversion, engine start) happen once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# vLLM's CPU build: a KV cache size it can take for granted, and both cores for its model threads
# (otherwise it keeps one of the two for its scheduler). Worker subprocesses inherit these.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0-1")

import pytest

from engines.default_model import ensure_smollm2


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    return ensure_smollm2()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_dir) -> str:
    from tests.builders import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama", smollm2_dir))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, tiny_llama_dir) -> str:
    from tests.builders import build_classifier

    return str(build_classifier(tmp_path_factory.mktemp("models") / "tiny-classifier", tiny_llama_dir))


@pytest.fixture(scope="session")
def tiny_value_head_dir(tmp_path_factory, tiny_llama_dir) -> str:
    from tests.builders import build_value_head_model

    return str(build_value_head_model(tmp_path_factory.mktemp("models") / "tiny-value-head", tiny_llama_dir))


@pytest.fixture(scope="session")
def smollm2_classifier_dir(tmp_path_factory, smollm2_dir) -> str:
    from tests.builders import build_classifier

    return str(build_classifier(tmp_path_factory.mktemp("models") / "smollm2-classifier", smollm2_dir))


# Short leases and heartbeats, so that crash recovery happens within a test's patience.
TEST_WORKER_ENV = {"INFERQ_LEASE_TTL_S": "3", "INFERQ_HEARTBEAT_S": "1"}


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis server of the session's own, so tests never touch anyone else's data. It wants a
    password, so every queue test also shows that authenticated URLs work end to end."""
    from worker.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(password="inferq-test-secret") as server:
        yield server.url


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="session")
def start_worker(redis_url, worker_logs):
    """Starts `inferq worker` subprocesses; all are stopped at the end of the session."""
    from worker.process import WorkerProcess

    started: list[WorkerProcess] = []

    def start(model: str, name: str, **options) -> WorkerProcess:
        env = {**TEST_WORKER_ENV, **options.pop("env", {})}
        worker = WorkerProcess(options.pop("redis_url", redis_url), model, name, worker_logs, env=env, **options)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def tiny_worker(start_worker, tiny_llama_dir):
    return start_worker(tiny_llama_dir, "tiny")


@pytest.fixture(scope="session")
def tiny_scorer_worker(start_worker, tiny_classifier_dir):
    return start_worker(tiny_classifier_dir, "tiny-rm", concurrency=4)


@pytest.fixture(scope="session")
def client(redis_url):
    from api_client import InferQClient

    with InferQClient(redis_url) as sync_client:
        yield sync_client


@pytest.fixture(scope="session")
def sea_adapter_dir(tmp_path_factory, smollm2_dir) -> str:
    from tests.builders import build_lora_adapter

    return str(build_lora_adapter(tmp_path_factory.mktemp("adapters") / "sea", smollm2_dir))
