"""ServerArgs: upstream 0.5.23 is a flat msgspec Struct (srt/server_args.py:551-563); sglang-kt 0.7.2 a
dataclass (KT srt/server_args.py:600) with kt_* fields (:877-899). Only the fields inferq uses, and a few."""

import dataclasses
from typing import Optional, Union

import msgspec

from sglang import FLAVOR

_COMMON = [
    ("model_path", str),
    ("tp_size", int, 1),
    ("dtype", str, "auto"),
    ("trust_remote_code", bool, False),
    ("is_embedding", bool, False),
    ("context_length", Optional[int], None),
    ("mem_fraction_static", Optional[float], None),
    ("enable_lora", Optional[bool], None),
    ("lora_paths", Optional[Union[dict, list]], None),
    ("max_loras_per_batch", int, 8),
    ("max_lora_rank", Optional[int], None),
    ("max_running_requests", Optional[int], None),
    ("log_level", str, "info"),
    ("random_seed", Optional[int], None),
    ("enable_deterministic_inference", bool, False),
    ("skip_tokenizer_init", bool, False),
]

if FLAVOR == "upstream":
    ServerArgs = msgspec.defstruct(
        "ServerArgs",
        [
            *_COMMON,
            ("incremental_streaming_output", bool, False),
            ("enable_priority_scheduling", bool, False),
            ("schedule_low_priority_values_first", bool, False),
        ],
        kw_only=True,
        dict=True,
    )
else:
    _KT = [
        ("stream_output", bool, False),
        ("kt_weight_path", Optional[str], None),
        ("kt_method", Optional[str], None),
        ("kt_cpuinfer", Optional[int], None),
        ("kt_threadpool_count", Optional[int], None),
        ("kt_numa_nodes", Optional[list], None),
        ("kt_num_gpu_experts", Optional[int], None),
        ("kt_gpu_experts_ratio", Optional[float], None),
        ("kt_max_deferred_experts_per_token", Optional[int], None),
        ("kt_gpu_prefill_token_threshold", Optional[int], None),
    ]
    ServerArgs = dataclasses.make_dataclass(
        "ServerArgs",
        [(f[0], f[1]) if len(f) == 2 else (f[0], f[1], dataclasses.field(default=f[2])) for f in [*_COMMON, *_KT]],
        kw_only=True,
    )
