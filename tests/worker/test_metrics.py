"""A worker's Prometheus metrics, scraped from a real worker process and parsed as Prometheus would."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness.embedded_redis import free_port


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_worker_exports_jobs_tokens_latencies_capacity_and_queue_depth(start_worker, client):
    port = free_port()
    worker = start_worker("echo", "metered", engine="echo", concurrency=3, env={"INFERQ_METRICS_PORT": str(port)})
    for _ in range(2):
        client.chat([{"role": "user", "content": "four words in all"}], "metered")
    held = client.submit_chat([{"role": "user", "content": "x [hold]"}], "metered")
    next(held.stream())
    labels = (("engine", "echo"), ("model", "metered"))
    samples = _scrape(port)
    assert samples[("inferq_jobs_started_total", labels)] == 3
    assert samples[("inferq_jobs_finished_total", tuple(sorted((*labels, ("status", "succeeded")))))] == 2
    assert samples[("inferq_tokens_generated_total", labels)] == 10  # 4 words + end of turn, twice
    assert samples[("inferq_jobs_in_flight", labels)] == 1
    assert samples[("inferq_engine_capacity", labels)] == 3
    for histogram in ("queue_wait", "time_to_first_token", "time_per_output_token", "job_duration"):
        assert samples[(f"inferq_{histogram}_seconds_count", labels)] == 2
    assert ("inferq_queue_depth", labels) in samples
    held.cancel()
    worker.stop()
