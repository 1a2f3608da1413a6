"""The engines the bench's parts run on, as its options choose them."""

from benchmarks.config import BenchConfig


def test_the_batch_part_runs_on_the_engine_chosen_with_the_rows_chosen():
    backends = {"hf": "huggingface", "vllm": "vllm", "echo": "echo"}
    for engine, backend in backends.items():
        spec = BenchConfig(batch_engine=engine, batch_rows=6).batch_engine_spec
        assert (spec.backend, spec.concurrency) == (backend, 6)
    vllm = BenchConfig(batch_engine="vllm", batch_rows=6).batch_engine_spec
    assert vllm.engine_args == {"enforce_eager": True, "vllm_config": {"max_num_seqs": 6}}  # the engine's rows too
