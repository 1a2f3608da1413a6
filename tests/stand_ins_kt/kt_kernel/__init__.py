"""Stand-in for kt-kernel 0.7.2's `kt_kernel` module (kt_kernel/__init__.py): the names sglang-kt imports."""

__version__ = "0.7.2"
__cpu_variant__ = "avx2"


class KTMoEWrapper:  # CPU-side MoE experts; never called by these tests
    pass


def generate_gpu_experts_masks(*args, **kwargs):
    raise NotImplementedError("the stand-in runs no experts")
