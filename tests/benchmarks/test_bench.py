"""`inferq bench` as a user runs it, on the echo engine's parts at their smallest sizes: it prints its
table and writes its JSON and plot. No timing is asserted: the numbers belong to the machine."""

import json
import os
import subprocess
import sys

ECHO_PARTS = "overhead,plumbing,streaming,footprint,batch"
SMALLEST = [
    "--overhead-engines", "echo", "--samples", "2", "--inflight", "1,2", "--plumbing-jobs", "4",
    "--stream-jobs", "2", "--stream-tokens", "8", "--waiting-jobs", "10", "--batch-engine", "echo",
    "--batch-samples", "2", "--batch-rows", "2",
]  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_bench_prints_its_table_and_writes_json_and_a_plot(tmp_path):
    json_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "bench", "--parts", ECHO_PARTS, *SMALLEST]
        + ["--json", str(json_path), "--plot", str(plot_path)],
        env={**os.environ, "INFERQ_REDIS_URL": "redis://127.0.0.1:9/0"},  # not to be used: the bench embeds its own
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for column in ("measured", "baseline", "ratio", "target"):
        assert column in result.stdout
    assert "bare Celery" in result.stdout

    report = json.loads(json_path.read_text())
    assert {row["part"] for row in report["rows"]} == set(ECHO_PARTS.split(","))
    assert {"date", "machine", "command", "config"} <= report.keys()
    plumbing = [row for row in report["rows"] if row["part"] == "plumbing"]
    rates = [row for row in plumbing if row["unit"] == "jobs/s"]
    assert [row["load"] for row in rates] == [1, 2]
    assert all(row["value"] > 0 and row["baseline"] > 0 and row["ratio"] is not None for row in rates)
    # CPU per job is read in the kernel's clock ticks (10 ms): over these 8 jobs either side may read 0 (seen
    # for bare Celery's worker on a quiet machine), so here only its rows' presence and signs are checked.
    cpu = [row for row in plumbing if row["unit"] == "ms"]
    assert {row["case"] for row in cpu} == {f"{who} CPU per echo job" for who in ("worker", "client", "Redis")}
    assert all(row["value"] >= 0 and row["baseline"] >= 0 for row in cpu)
    assert plot_path.read_bytes().startswith(PNG_SIGNATURE)
