"""The bench's plot: every ratio gets a bar on the log axis, one at or below zero (a difference that came out
negative, say the TTFT the queue adds) included, at the axis' floor."""

from benchmarks.report import bar_lengths, write_plot
from benchmarks.results import Row, Target

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_ratio_at_or_below_zero_is_drawn_at_the_floor_below_every_other():
    lengths, floor = bar_lengths([-15.3, 0.78, 0.0, 23.5])
    assert floor == 0.78 / 4
    assert lengths == [floor, 0.78, floor, 23.5]


def test_the_plot_is_written_with_a_negative_ratio_among_the_rows(tmp_path):
    target = Target("ratio", ">=", 0.8)
    rows = [
        Row("serve", "TTFT p50 the gateway and queue add", "ms", -32.3, 2.11, "Celery round trip", target),
        Row("plumbing", "echo jobs/s, 16 in flight", "jobs/s", 353, 451, "bare Celery", target, load=16),
        Row("plumbing", "echo jobs/s, 256 in flight", "jobs/s", 329, 484, "bare Celery", load=256),
    ]
    path = tmp_path / "bench.png"
    write_plot(rows, "a title", path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
