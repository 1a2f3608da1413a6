"""The KTransformers engine: SGLang's engine from the `sglang-kt` fork with KTransformers' kt_* options.

KTransformers 0.7.x has no inference API of its own: large MoE models (DeepSeek-V3/R1, Qwen3-MoE,
Kimi-K2...) run on sglang-kt, with hot experts on the GPU and the rest computed on the CPU by the
`kt_kernel` extension. Written against ktransformers / kt-kernel / sglang-kt 0.7.2. The fork installs
the `sglang` module too, so it needs an environment of its own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

from pydantic import Field, model_validator

from engines.errors import EngineUnavailable
from engines.sglang import SGLangEngine, SGLangEngineArgs
from engines.sglang.engine import server_args

KT_INSTALL = "pip uninstall -y sglang && pip install 'inferq[ktransformers]'  (in an environment of its own)"


class KtEngineArgs(SGLangEngineArgs):
    kt_weight_path: str = Field(description="the CPU-side expert weights (converted for kt_method)")
    kt_method: str = Field("AMXINT4", description="AMXINT4, AMXINT8, RAWINT4, FP8, FP8_PERCHANNEL, BF16, LLAMAFILE")
    kt_cpuinfer: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="CPU inference threads")
    kt_threadpool_count: int = Field(2, ge=1, description="thread pools, one per NUMA node")
    kt_numa_nodes: list[int] | None = None
    kt_num_gpu_experts: int | None = Field(None, ge=0, description="experts kept on the GPU per MoE layer")
    kt_gpu_experts_ratio: float | None = Field(None, ge=0, le=1, description="instead: a share of all experts")
    kt_max_deferred_experts_per_token: int | None = Field(None, ge=0)
    kt_gpu_prefill_token_threshold: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _experts_placed(self) -> KtEngineArgs:
        # Without either, sglang-kt silently runs without KTransformers (a warning in its log only).
        if self.kt_num_gpu_experts is None and self.kt_gpu_experts_ratio is None:
            raise ValueError("set kt_num_gpu_experts or kt_gpu_experts_ratio (how many experts stay on the GPU)")
        if self.kt_numa_nodes is not None and len(self.kt_numa_nodes) != self.kt_threadpool_count:
            raise ValueError("kt_numa_nodes needs one node per thread pool (kt_threadpool_count)")
        return self


KT_OPTIONS = tuple(name for name in KtEngineArgs.model_fields if name.startswith("kt_"))


def kt_server_args(model: str, args: KtEngineArgs, hf_config: Any, num_gpus: int) -> dict[str, Any]:
    """SGLang's arguments plus every kt_* option that is set (the fork's dataclass defaults are None, not
    its CLI's, so each is passed explicitly)."""
    kwargs = server_args(model, args, hf_config, num_gpus)
    kwargs.update({name: getattr(args, name) for name in KT_OPTIONS if getattr(args, name) is not None})
    return kwargs


class KTransformersEngine(SGLangEngine):
    name = "ktransformers"
    args_model = KtEngineArgs

    def check_backend(self) -> None:
        try:
            importlib.metadata.version("sglang-kt")
        except importlib.metadata.PackageNotFoundError:
            raise EngineUnavailable(
                f"KTransformers runs on the sglang-kt fork, and the installed sglang is not it: {KT_INSTALL}",
                field="engine",
            ) from None
        if importlib.util.find_spec("kt_kernel") is None:
            raise EngineUnavailable(f"KTransformers needs its kt_kernel extension: {KT_INSTALL}", field="engine")

    def server_args(self, model: str, args: KtEngineArgs, hf_config: Any, num_gpus: int) -> dict[str, Any]:
        return kt_server_args(model, args, hf_config, num_gpus)
