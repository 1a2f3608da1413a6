"""The SGLang backend (`pip install 'inferq[sglang]'`, GPU only). Imports SGLang itself only when an
engine is created, so that its process-wide side effects can be contained (see containment.py)."""

from engines.sglang.engine import SGLangEngine, SGLangEngineArgs

__all__ = ["SGLangEngine", "SGLangEngineArgs"]
