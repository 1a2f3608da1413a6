"""A LLaMA-Factory example's media columns on its batch line: images as data: URLs where their `<image>`
placeholders stand, what cannot reach the model refused by its column."""

import base64
import json

from api_client import AsyncInferQClient
from batch.lines import LineError
from batch.llamafactory_lines import dataset_lines
from batch.runner import BatchProgress, run_batch
from tests.images import png


def test_images_go_in_as_data_urls_where_their_placeholders_stand(tmp_path):
    # LLaMA-Factory's mllm_demo entry: a messages column, images relative to the dataset directory
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "1.png").write_bytes(b"\x89PNG first")
    (tmp_path / "pictures" / "2.jpg").write_bytes(b"\xff\xd8 second")
    turns = [{"role": "user", "content": "<image>Who?"}, {"role": "assistant", "content": "Kane."},
             {"role": "user", "content": "And<image>here?"}, {"role": "assistant", "content": "Gretzka."}]  # fmt: skip
    rows = [{"messages": turns, "images": ["pictures/1.png", "pictures/2.jpg"]},
            {"messages": turns, "images": ["pictures/1.png"]},
            {"messages": turns, "images": ["pictures/1.png", "pictures/missing.png"]},
            {"messages": turns[:2], "videos": ["clip.mp4"]}]  # fmt: skip
    (tmp_path / "mllm.json").write_text(json.dumps(rows))
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    entry = {"file_name": "mllm.json", "formatting": "sharegpt", "tags": tags,
             "columns": {"messages": "messages", "images": "images", "videos": "videos"}}  # fmt: skip
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mllm": entry}))
    placed, one_short, missing, video = dataset_lines("mllm", "m", dataset_dir=str(tmp_path))
    first, _, second = placed.messages
    assert [part.type for part in first.content] == ["image", "text"] and first.content[1].text == "Who?"
    assert [part.type for part in second.content] == ["text", "image", "text"]
    assert first.content[0].image.startswith("data:image/png;base64,")
    assert base64.b64decode(first.content[0].image.partition(",")[2]) == b"\x89PNG first"
    assert base64.b64decode(second.content[1].image.partition(",")[2]) == b"\xff\xd8 second"
    assert placed.label == "Gretzka."
    assert isinstance(one_short, LineError) and one_short.param == "images" and "1 images for 2" in one_short.message
    assert isinstance(missing, LineError) and missing.param == "images.1"
    assert isinstance(video, LineError) and video.param == "videos"  # never run as text alone


def test_an_image_path_from_where_the_batch_was_first_run_is_read_from_there_on_resume(tmp_path, monkeypatch):
    # A path neither in the dataset's directory nor absolute: read from the directory a resume ran in, it
    # became a refusal there, the input's fingerprint changed, and the batch could not be resumed.
    first_run, elsewhere, data = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "data"
    for directory in (first_run, elsewhere, data):
        directory.mkdir()
    (first_run / "shot.png").write_bytes(b"\x89PNG here")
    (data / "mllm.json").write_text(json.dumps([{"messages": [{"role": "user", "content": "<image>What?"}],
                                                  "images": ["shot.png"]}]))  # fmt: skip
    monkeypatch.chdir(elsewhere)  # the resume's directory
    [line] = dataset_lines(str(data / "mllm.json"), "m", working_dir=str(first_run))
    assert base64.b64decode(line.messages[0].content[0].image.partition(",")[2]) == b"\x89PNG here"
    [refused] = dataset_lines(str(data / "mllm.json"), "m")  # what a manifest without a working_dir did
    assert isinstance(refused, LineError) and refused.param == "images.0"


async def test_a_dataset_with_images_runs_on_a_vision_model(client_settings, vision_worker, tmp_path):
    # mllm_demo's shape, its two images in two turns, on the tiny LLaVA: each goes through the real processor
    (tmp_path / "red.png").write_bytes(png())
    turns = [{"role": "user", "content": "<image>Who?"}, {"role": "assistant", "content": "Kane."},
             {"role": "user", "content": "And <image>now?"}]  # fmt: skip
    (tmp_path / "mllm.json").write_text(json.dumps([{"messages": turns, "images": ["red.png", "red.png"]}]))
    [line] = dataset_lines(str(tmp_path / "mllm.json"), "tiny-vision")
    line = line.model_copy(update={"options": {"max_new_tokens": 4}})  # its answers are noise: a few words do
    ended = []
    async with AsyncInferQClient(settings=client_settings) as client:
        await run_batch(client, [line], batch_id="batch-images", progress=BatchProgress(total=1),
                        on_result=lambda line, job_id, record, error: ended.append((record, error)))  # fmt: skip
    [(record, error)] = ended
    assert error is None and record.usage.prompt_tokens > 2 * 16  # each image took its 16 patches in the prompt
