"""A batch from a file to files (what `inferq batch run|resume` does): read the input, skip what the journal
says is done, run the rest, and write LLaMA-Factory's predictions once every line is answered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from pydantic_core import PydanticSerializationError

from api_client import AsyncInferQClient
from batch.journal import Journal, Manifest, dumps
from batch.lines import BatchLine, LineError, json_lines
from batch.llamafactory_lines import dataset_lines
from batch.predictions import prediction
from batch.runner import BatchProgress, run_batch
from engines.errors import InferqError, InvalidRequest
from gateway.batch_lines import openai_lines
from gateway.batch_outputs import answered_line, failed_line, refused_line
from tasks.schemas import JobRecord


def read_lines(manifest: Manifest) -> tuple[list[BatchLine], list[LineError]]:
    if manifest.dataset_dir is None and _is_openai_jsonl(Path(manifest.input)):
        # surrogateescape: a line that is not UTF-8 is refused by its line number, not the whole file with no name
        text = Path(manifest.input).read_bytes().decode("utf-8", errors="surrogateescape")
        found = list(openai_lines(json_lines(text), manifest.model))
    else:
        if manifest.model is None:
            raise InvalidRequest("a dataset's examples need the model to run on", field="model")
        found = list(dataset_lines(manifest.input, manifest.model, dataset_dir=manifest.dataset_dir,
                                   formatting=manifest.formatting, score=manifest.score,
                                   working_dir=manifest.working_dir))  # fmt: skip
    refused = [line for line in found if isinstance(line, LineError)]
    return [line for line in found if isinstance(line, BatchLine)], refused


def lines_fingerprint(lines: list[BatchLine], refusals: list[LineError]) -> str:
    digest = hashlib.sha256()
    for line in sorted([*lines, *refusals], key=lambda line: line.index):
        try:
            digest.update(line.model_dump_json().encode())
        except PydanticSerializationError:  # a lone surrogate (its line fails at submit): digested as its escape
            digest.update(json.dumps(line.model_dump(mode="json")).encode())
    return digest.hexdigest()


def _is_openai_jsonl(path: Path) -> bool:
    """OpenAI's batch lines, told apart from a dataset by the first line that is JSON at all (a torn first
    line is that line's refusal, not a reason to read the file as a dataset)."""
    with path.open(encoding="utf-8", errors="surrogateescape") as file:  # a bad line is its own refusal
        for raw in file:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            return isinstance(item, dict) and "custom_id" in item
    return False


async def run_file_batch(
    client: AsyncInferQClient,
    manifest: Manifest,
    output: Path,
    show: Callable[[BatchProgress, bool], None],
    lines: list[BatchLine],
    refusals: list[LineError],
) -> str:
    journal = Journal(output, Path(manifest.errors))
    try:
        done = journal.done()
        for refusal in refusals:
            line = refused_line(refusal)
            if line["id"] not in done.refusal_ids:
                journal.write(line, succeeded=False)
        todo = [line for line in lines if line.custom_id not in done.custom_ids]
        progress = BatchProgress(total=len(todo))

        def on_result(line: BatchLine, job_id: str, record: JobRecord | None, error: InferqError | None) -> None:
            answer = answered_line(line, record) if record is not None else failed_line(line, job_id, error)
            journal.write(answer, succeeded=record is not None)
            show(progress, False)

        await run_batch(client, todo, batch_id=manifest.batch_id, progress=progress, on_result=on_result,
                        window=manifest.window)  # fmt: skip
        show(progress, True)
    finally:
        journal.close()
    answered = journal.answered()
    if manifest.predictions is not None:
        with Path(manifest.predictions).open("w", encoding="utf-8") as file:
            for line in sorted(lines, key=lambda line: line.index):
                if line.custom_id in answered:
                    file.write(dumps(prediction(line, answered[line.custom_id])))
    failed = len(lines) + len(refusals) - len(answered)
    return (f"{len(lines) + len(refusals)} lines: {len(answered)} answered ({output}), {failed} failed or refused "
            f"({manifest.errors})")  # fmt: skip
