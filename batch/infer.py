"""`batch_infer(dataset)`: LLaMA-Factory's name (its inference engine's `batch_infer`, still unimplemented
there), on the fleet: a dataset's examples run as a batch, their answers returned in the dataset's order."""

from __future__ import annotations

import uuid

from api_client import AsyncInferQClient
from batch.lines import BatchLine, LineError
from batch.llamafactory_lines import dataset_lines
from batch.runner import DEFAULT_WINDOW, BatchProgress, run_batch
from engines.errors import InferqError, InvalidRequest
from tasks.schemas import JobRecord


async def batch_infer(
    client: AsyncInferQClient,
    dataset: str,
    model: str,
    *,
    dataset_dir: str | None = None,
    formatting: str | None = None,
    score: bool = False,
    window: int = DEFAULT_WINDOW,
    batch_id: str | None = None,
) -> list[JobRecord | InferqError]:
    """One entry per example, in order: its record, or the error it ended with (a refused example's names
    the field). Give `batch_id` to make a second call after a crash find the first call's jobs."""
    results: list[JobRecord | InferqError | None] = []
    lines = []
    for found in dataset_lines(dataset, model, dataset_dir=dataset_dir, formatting=formatting, score=score):
        results.append(None)
        if isinstance(found, LineError):
            results[found.index] = InvalidRequest(found.message, field=found.param)
        else:
            lines.append(found)

    def on_result(line: BatchLine, job_id: str, record: JobRecord | None, error: InferqError | None) -> None:
        results[line.index] = record if record is not None else error

    await run_batch(client, lines, batch_id=batch_id or uuid.uuid4().hex, progress=BatchProgress(total=len(lines)),
                    on_result=on_result, window=window)  # fmt: skip
    return results
