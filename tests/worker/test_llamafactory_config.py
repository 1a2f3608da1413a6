"""`inferq worker --config infer.yaml`: LLaMA-Factory's inference YAML, honoured or refused by name."""

import subprocess
import sys

import pytest
import yaml

from engines.errors import InvalidRequest
from worker.llamafactory_config import worker_options

# The broker plays no part: the Redis pass only.
pytestmark = pytest.mark.any_broker


def options(tmp_path, **config):
    path = tmp_path / "infer.yaml"
    path.write_text(yaml.safe_dump(config))
    return worker_options(path)


def test_a_vllm_config_with_an_adapter_and_generation_defaults(tmp_path):
    found = options(
        tmp_path, model_name_or_path="/models/llama", adapter_name_or_path="saves/llama/lora/sft",
        infer_backend="vllm", infer_dtype="bfloat16", finetuning_type="lora", trust_remote_code=True,
        vllm_maxlen=4096, vllm_gpu_util=0.8, vllm_enforce_eager=True, vllm_max_lora_rank=64,
        vllm_config='{"max_num_seqs": 32}', temperature=0.2, top_p=0.9, max_new_tokens=256, do_sample=True,
        num_beams=1, enable_thinking=True,
    )  # fmt: skip
    assert found == {
        "model": "/models/llama",
        "engine": "vllm",
        "engine_args": {
            "adapters": {"sft": "saves/llama/lora/sft"}, "default_adapter": "sft", "dtype": "bfloat16",
            "trust_remote_code": True, "max_model_len": 4096, "gpu_memory_utilization": 0.8,
            "enforce_eager": True, "max_lora_rank": 64, "vllm_config": {"max_num_seqs": 32},
            "default_params": {"do_sample": True, "temperature": 0.2, "top_p": 0.9, "max_new_tokens": 256},
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        ({"template": "llama3"}, "template", "chat template"),
        ({"adapter_name_or_path": "a,b"}, "adapter_name_or_path", "one adapter"),
        ({"num_beams": 4}, "num_beams", "beam search"),
        ({"default_system": "Be nice."}, "default_system", "system"),
        ({"vllm_maxlen": 2048}, "vllm_maxlen", "infer_backend: vllm"),
        ({"sglang_maxlen": 2048, "infer_backend": "sglang"}, "sglang_maxlen", "--engine-args"),
        ({"infer_backend": "tensorrt"}, "infer_backend", "one of"),
        ({"enable_thinking": False}, "enable_thinking", "cannot turn it off"),
        ({"temperature": -1}, "temperature", "greater than or equal"),
        ({"quantization_bit": 4}, "quantization_bit", "cannot honour"),
        ({"length_penalty": 1.2}, "length_penalty", "beam search"),
        ({"finetuning_type": "full", "adapter_name_or_path": "a"}, "adapter_name_or_path", "lora"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(tmp_path, config, field, says):
    with pytest.raises(InvalidRequest) as caught:
        options(tmp_path, model_name_or_path="/models/m", **config)
    assert caught.value.field == field and says in caught.value.message


def test_a_vllm_config_gets_llamafactorys_vllm_defaults(tmp_path):
    found = options(tmp_path, model_name_or_path="m", infer_backend="vllm")["engine_args"]
    assert (found["max_model_len"], found["gpu_memory_utilization"], found["max_lora_rank"]) == (4096, 0.7, 32)


def test_max_length_counts_as_llamafactory_counts_it(tmp_path):
    """GeneratingArguments.to_dict: a positive max_new_tokens (its default 1024 too) drops max_length."""
    assert "default_params" not in options(tmp_path, model_name_or_path="m", max_length=2048)["engine_args"]
    capped = options(tmp_path, model_name_or_path="m", max_length=2048, max_new_tokens=-1)
    assert capped["engine_args"]["default_params"] == {"max_length": 2048}
    unset = options(tmp_path, model_name_or_path="m", max_new_tokens=-1)  # its own max_length, 1024
    assert unset["engine_args"]["default_params"] == {"max_length": 1024}


def test_a_file_that_is_not_yaml_is_refused_as_the_config(tmp_path):
    (tmp_path / "infer.yaml").write_text("temperature: [0.5\n")
    with pytest.raises(InvalidRequest) as caught:
        worker_options(tmp_path / "infer.yaml")
    assert caught.value.field == "config" and "not YAML" in caught.value.message


def test_the_worker_command_refuses_a_config_before_anything_loads(tmp_path):
    (tmp_path / "infer.yaml").write_text(yaml.safe_dump({"model_name_or_path": "m", "template": "qwen"}))
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "worker", "--config", str(tmp_path / "infer.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "infer.yaml: template:" in result.stderr


def test_a_worker_started_from_a_config_applies_its_adapter_and_defaults(
    tmp_path, start_worker, smollm2_dir, sea_adapter_dir, smollm2_worker, client
):
    config = {"model_name_or_path": smollm2_dir, "adapter_name_or_path": sea_adapter_dir,
              "finetuning_type": "lora", "do_sample": False, "max_new_tokens": 6}  # fmt: skip
    (tmp_path / "infer.yaml").write_text(yaml.safe_dump(config))
    worker = start_worker(
        smollm2_dir, "smollm2-sea", concurrency=2, extra_args=["--config", str(tmp_path / "infer.yaml")]
    )
    messages = [{"role": "user", "content": "Where do rivers go?"}]
    [plain] = client.chat(messages, "smollm2-sea")
    [named] = client.chat(messages, "smollm2-sea", adapter="sea")
    [base] = client.chat(messages, "smollm2", do_sample=False, max_new_tokens=6)
    assert plain == named != base  # the adapter applies to a request that names none, as in LLaMA-Factory
    assert plain.response_length <= 6  # the config's max_new_tokens is the default
    worker.stop()
