"""Offline batches over the fleet, shared by `inferq batch` and the gateway's Batch API.

A batch is a list of lines (OpenAI batch JSONL, or a LLaMA-Factory dataset), each run as an ordinary job at
the lowest priority, a bounded window of them in flight. Each line's job id comes from the batch's id and
the line's `custom_id` (an idempotency key), so a batch resumed after any crash finds the jobs its first run
submitted instead of running them again.
"""

from batch.infer import batch_infer
from batch.lines import BatchLine, LineError
from batch.runner import BatchProgress, run_batch

__all__ = ["BatchLine", "BatchProgress", "LineError", "batch_infer", "run_batch"]
