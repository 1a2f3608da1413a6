"""Prometheus metrics of one worker (`inferq worker --metrics-port N`; off by default).

Everything is observed from what the worker already knows: a job's start, its record (status, usage,
timings), its tokens, the jobs in flight, the engine's capacity, and its model's queue depth, read at
each heartbeat. Labels are the served model and the engine; a record's status adds one more.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tasks.schemas import JobRecord

# Seconds, from a tokens' worth (time per output token) to a long generation (job duration).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class WorkerMetrics:
    def __init__(self, model: str, engine: str) -> None:
        self.registry = CollectorRegistry()  # the worker's own: no process-wide default state
        labels = {"model": model, "engine": engine}
        names = ["model", "engine"]

        def counter(name: str, doc: str, *extra: str) -> Counter:
            return Counter(name, doc, [*names, *extra], registry=self.registry)

        def histogram(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, names, buckets=LATENCY_BUCKETS_S, registry=self.registry).labels(**labels)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, names, registry=self.registry).labels(**labels)

        self._started = counter("inferq_jobs_started_total", "Jobs this worker began to run").labels(**labels)
        self._finished = counter("inferq_jobs_finished_total", "Jobs this worker recorded, by status", "status")
        self._tokens = counter("inferq_tokens_generated_total", "Tokens generated").labels(**labels)
        self._queue_wait = histogram("inferq_queue_wait_seconds", "From submit to the start of the run")
        self._ttft = histogram("inferq_time_to_first_token_seconds", "From the start of the run to the first token")
        self._tpot = histogram("inferq_time_per_output_token_seconds", "Generation time per token after the first")
        self._duration = histogram("inferq_job_duration_seconds", "From the start of the run to the record")
        self.in_flight = gauge("inferq_jobs_in_flight", "Jobs running in the engine now")
        self.capacity = gauge("inferq_engine_capacity", "Jobs the worker runs at once")
        self.queue_depth = gauge("inferq_queue_depth", "Jobs waiting in this model's queue")
        self._labels = labels

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

    def job_started(self) -> None:
        self._started.inc()

    def job_recorded(self, record: JobRecord) -> None:
        self._finished.labels(**self._labels, status=record.status.value).inc()
        timings = record.timings
        if timings.started_at is not None:
            self._queue_wait.observe(max(0.0, timings.started_at - timings.queued_at))
            if timings.finished_at is not None:
                self._duration.observe(timings.finished_at - timings.started_at)
            if timings.first_token_at is not None:
                self._ttft.observe(timings.first_token_at - timings.started_at)
        if record.usage is not None:
            self._tokens.inc(record.usage.completion_tokens)
            # per token of one answer: n answers grow side by side, so the longest one's tokens set the pace
            longest = max((response.response_length for response in record.responses or ()), default=0)
            if longest > 1 and timings.first_token_at is not None and timings.finished_at is not None:
                self._tpot.observe((timings.finished_at - timings.first_token_at) / (longest - 1))
