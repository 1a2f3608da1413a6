"""What the HF engine refuses to load (engines/hf/loading.py), from the checkpoint's config alone: nothing else
is read, so the checkpoints here are a config.json and no weights."""

import pytest
from transformers import LlamaConfig, LlavaConfig, Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

from engines import load_engine
from engines.errors import EngineError
from engines.model_info import uses_multimodal_rope

# A Llama whose rope settings name an mrope section: how a remote-code model (whose class transformers does not
# know) says it places tokens at 3-D positions.
REMOTE_CODE_MROPE = LlamaConfig(
    rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [8, 12, 12]}
)


@pytest.mark.parametrize(
    "config",
    [
        Qwen2VLConfig(rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24]}),  # as checkpoints are
        Qwen2_5_VLConfig(),  # no section: the class's default applies
        Qwen3VLConfig(),
        REMOTE_CODE_MROPE,
    ],
    ids=lambda config: config.model_type,
)
def test_a_model_with_3d_rotary_positions_is_refused_with_where_to_serve_it(tmp_path, config):
    config.save_pretrained(tmp_path)
    with pytest.raises(EngineError) as caught:
        load_engine("huggingface", str(tmp_path))
    assert caught.value.field == "model"
    assert config.model_type in caught.value.message and "vLLM engine" in caught.value.message


def test_llava_places_tokens_at_text_positions_and_is_served():
    assert not uses_multimodal_rope(LlavaConfig())
