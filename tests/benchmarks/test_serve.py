"""The `serve` part's arithmetic: what `vllm bench serve --save-result` wrote becomes rows beside `vllm serve`'s.
Running both servers is `inferq bench --parts serve` (minutes of vLLM start-up): the README has its figures."""

import json

from benchmarks.config import BenchConfig
from benchmarks.serve import ServeResult, _rows


def _saved(tmp_path, name, **figures):
    path = tmp_path / name
    path.write_text(json.dumps({"completed": 64, "failed": 0, **figures}))
    return ServeResult.read(path)


def test_the_gateway_is_set_beside_vllm_serve_and_its_added_ttft_beside_a_celery_round_trip(tmp_path):
    direct = _saved(
        tmp_path, "vllm-serve.json", output_throughput=100.0, median_ttft_ms=50.0, p99_ttft_ms=90.0, median_itl_ms=20.0
    )
    queued = _saved(
        tmp_path, "inferq.json", output_throughput=96.0, median_ttft_ms=56.0, p99_ttft_ms=99.0, median_itl_ms=21.0
    )
    rows = {row.case: row for row in _rows(BenchConfig(), queued, direct, celery_ms=5.0)}
    throughput = next(row for case, row in rows.items() if case.startswith("output tok/s"))
    assert (throughput.ratio, throughput.met) == (0.96, True)  # the target: >= 0.95x vllm serve
    added = rows["TTFT p50 the gateway and queue add"]
    assert (added.value, added.baseline, added.met) == (6.0, 5.0, False)  # 6 ms added against a 5 ms round trip
    assert rows["answered of 64 (64 prompts, 16 concurrent)"].value == 64
