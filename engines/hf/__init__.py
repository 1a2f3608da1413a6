"""The HuggingFace transformers backend (`pip install 'inferq[hf]'`)."""

from engines.hf.engine import HfEngineArgs, HuggingFaceEngine

__all__ = ["HfEngineArgs", "HuggingFaceEngine"]
