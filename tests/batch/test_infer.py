"""`batch_infer(dataset)` over a real echo worker: every example's answer, in the dataset's order."""

import json

from api_client import AsyncInferQClient
from batch import batch_infer
from engines.errors import InvalidRequest


async def test_batch_infer_answers_a_dataset_in_order(client_settings, echo_worker, tmp_path):
    examples = [{"instruction": f"say {i}", "output": f"said {i}"} for i in range(10)]
    examples.insert(4, {"instruction": 7})  # refused in its place, the others answered
    (tmp_path / "data.json").write_text(json.dumps(examples))
    async with AsyncInferQClient(settings=client_settings) as client:
        results = await batch_infer(client, str(tmp_path / "data.json"), "echo", window=3)
    assert isinstance(results[4], InvalidRequest) and results[4].field == "instruction"
    answered = [result.responses[0].response_text for index, result in enumerate(results) if index != 4]
    assert answered == [f"say {i}" for i in range(10)]
