"""Session-wide models and engines. Slow things (model conversion, engine start) happen once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One compute thread per process, the test process's and every worker's (they inherit these): make test runs
# four sessions on two cores, and an OpenMP team of two spins at each op's barrier for a partner the
# scheduler has put aside; on a loaded machine that made a 3 s SmolLM2 test take 60. vLLM's CPU build gets
# no core binding (it would pin every session's engine to the same cores) and a KV cache size it can take
# for granted.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

import pytest

from engines.default_model import ensure_smollm2


def pytest_addoption(parser):
    parser.addoption(
        "--broker",
        choices=("redis", "amqp"),
        default="redis",
        help="where the queues are: the session's Redis, or a private vhost on the local RabbitMQ "
        "(records and token streams stay on Redis)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "redis_broker: reads kombu's Redis lists or hashes; runs with --broker redis")
    config.addinivalue_line("markers", "amqp_broker: publishes to RabbitMQ itself; runs with --broker amqp")
    config.addinivalue_line(
        "markers", "any_broker: the broker plays no part in what it tests; runs in the Redis pass only"
    )
    if config.getoption("--broker") == "amqp":
        from harness.rabbitmq_vhost import PrivateVhost

        config.inferq_vhost = PrivateVhost()
        # Every QueueSettings of the session, and every worker process (they inherit it), uses RabbitMQ.
        os.environ["INFERQ_BROKER_URL"] = config.inferq_vhost.create()


def pytest_unconfigure(config):
    if getattr(config, "inferq_vhost", None) is not None:
        config.inferq_vhost.delete()


def pytest_collection_modifyitems(config, items):
    """A test of one broker's own structures is left out (deselected, not skipped) of the other's run, and a
    test the broker plays no part in runs once, in the Redis pass."""
    other = ("redis_broker", "any_broker") if config.getoption("--broker") == "amqp" else ("amqp_broker",)
    left_out = [item for item in items if any(item.get_closest_marker(marker) for marker in other)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


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


# Short leases and heartbeats, so that crash recovery happens within a test's patience; a short shutdown
# grace, so that a worker stopped with a job still held lets go of it at once.
TEST_WORKER_ENV = {"INFERQ_LEASE_TTL_S": "3", "INFERQ_HEARTBEAT_S": "1", "INFERQ_SHUTDOWN_GRACE_S": "2"}


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis server of the session's own, so tests never touch anyone else's data. It wants a
    password, so every queue test also shows that authenticated URLs work end to end."""
    from harness.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(password="inferq-test-secret") as server:
        yield server.url


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="session")
def start_worker(redis_url, worker_logs):
    """Starts `inferq worker` subprocesses; all are stopped at the end of the session."""
    from harness.worker_process import WorkerProcess

    started: list[WorkerProcess] = []

    def start(model: str, name: str, **options) -> WorkerProcess:
        env = {**TEST_WORKER_ENV, **options.pop("env", {})}
        start_timeout_s = options.pop("start_timeout_s", 180)
        worker = WorkerProcess(options.pop("redis_url", redis_url), model, name, worker_logs, env=env, **options)
        started.append(worker)
        return worker.start(start_timeout_s)

    yield start
    for worker in started:
        worker.terminate()  # all at once: each warm shutdown takes a while, and they need not queue up
    for worker in started:
        # SIGTERM waits for running jobs: a test that left one holding ([hold]) shows up here, by name
        if worker.stop() != 0:
            print(f"worker {worker.hostname} did not stop cleanly:\n{worker.log_tail(30)}")


@pytest.fixture(scope="session")
def echo_worker(start_worker):
    """A worker without a model (engines/echo.py): the queue's tests steer its jobs by construction."""
    return start_worker("echo", "echo", engine="echo", concurrency=16)


@pytest.fixture(scope="session")
def isolated_url(redis_url):
    """Database 1 of the session's Redis: the workers use database 0, store-level tests this one."""
    return redis_url.rsplit("/", 1)[0] + "/1"


@pytest.fixture(scope="session")
def isolated_redis(isolated_url):
    """A plain client on that database, for a test that plays a third party (injects, steals, deletes)."""
    import redis

    return redis.Redis.from_url(isolated_url)


@pytest.fixture
async def store(isolated_url, isolated_redis):
    """A JobStore on a database of its own, flushed before each test: a test sees only its own keys."""
    from tasks.config import QueueSettings
    from tasks.store import JobStore

    isolated_redis.flushdb()
    job_store = JobStore.open(QueueSettings(redis_url=isolated_url, stream_ttl_s=30))
    yield job_store
    await job_store.aclose()


@pytest.fixture(scope="session")
def smollm2_worker(start_worker):
    """The default model behind the queue (the HF engine), for tests that need a real answer."""
    return start_worker("smollm2", "smollm2", concurrency=4)


@pytest.fixture(scope="session")
def vllm_worker(start_worker, smollm2_dir):
    """SmolLM2 on a vLLM worker (a start costs about a minute on two cores, so one for the session: the API
    tests use it, then tests/worker/test_vllm_worker.py SIGKILLs it last, to check nothing is left behind)."""
    return start_worker(
        smollm2_dir,
        "smollm2-vllm",
        engine="vllm",
        engine_args={"enforce_eager": True},
        concurrency=16,
        start_timeout_s=600,  # a bound for a hang only: 80-94 s seen on two loaded cores, beside another vLLM's start
    )


@pytest.fixture(scope="session")
def vision_worker(start_worker):
    """A tiny random LLaVA on SmolLM2's tokenizer (engines/default_model.py): images go through the real
    processor and vision tower; its answers are noise, so tests check shapes, never words."""
    return start_worker("smollm2-vision", "tiny-vision")


@pytest.fixture(scope="session")
def tiny_worker(start_worker, tiny_llama_dir):
    return start_worker(tiny_llama_dir, "tiny")


@pytest.fixture(scope="session")
def tiny_scorer_worker(start_worker, tiny_classifier_dir):
    return start_worker(tiny_classifier_dir, "tiny-rm", concurrency=4)


@pytest.fixture(scope="session")
def client(client_settings):
    from api_client import InferQClient

    with InferQClient(settings=client_settings) as sync_client:
        yield sync_client


@pytest.fixture(scope="session")
def sea_adapter_dir(tmp_path_factory, smollm2_dir) -> str:
    from tests.builders import build_lora_adapter

    return str(build_lora_adapter(tmp_path_factory.mktemp("adapters") / "sea", smollm2_dir))


@pytest.fixture(scope="session")
def echo_scorer_worker(start_worker):
    return start_worker("echo", "echo-rm", engine="echo", engine_args={"task": "score"}, concurrency=4)


@pytest.fixture(scope="session")
def client_settings(redis_url):
    """What the client tests run with: a job whose model has no live worker fails after one second."""
    from tasks.config import QueueSettings

    return QueueSettings(redis_url=redis_url, no_worker_grace_s=1)


@pytest.fixture(scope="session")
def release(tmp_path_factory):
    """`release()` -> (word, open): a `[wait:PATH]` word for an echo job and the function that lets it go on."""
    folder = tmp_path_factory.mktemp("releases")
    count = 0

    def make():
        nonlocal count
        count += 1
        path = folder / f"release-{count}"
        return f"[wait:{path}]", path.touch

    return make


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server as a process, with the bucket `inferq-files` (the Batch API's S3 store)."""
    from harness.moto_s3 import MotoS3

    server = MotoS3().start()
    server.create_bucket("inferq-files")
    yield server
    server.stop()
