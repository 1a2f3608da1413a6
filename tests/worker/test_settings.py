import pytest
from pydantic import ValidationError

from worker.settings import WorkerSettings, worker_settings

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


def test_defaults_serve_the_default_model():
    settings = WorkerSettings()
    assert (settings.engine, settings.model, settings.name) == ("huggingface", "smollm2", "smollm2")


def test_the_served_name_defaults_to_the_checkpoint_folder():
    assert WorkerSettings(model="/models/Qwen2.5-7B-Instruct/").name == "Qwen2.5-7B-Instruct"


def test_environment_variables_configure_the_worker(monkeypatch):
    monkeypatch.setenv("INFERQ_ENGINE", "vllm")
    monkeypatch.setenv("INFERQ_GPUS", "0,1")
    monkeypatch.setenv("INFERQ_ENGINE_ARGS", '{"max_model_len": 4096}')
    settings = WorkerSettings()
    assert (settings.engine, settings.gpus, settings.engine_args) == ("vllm", [0, 1], {"max_model_len": 4096})
    monkeypatch.setenv("INFERQ_GPUS", "0")  # one GPU: pydantic-settings decodes it as the JSON number 0
    assert WorkerSettings().gpus == [0]


def test_a_variable_that_is_not_its_fields_json_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("INFERQ_ENGINE_ARGS", "{bad")
    with pytest.raises(SystemExit) as caught:
        worker_settings(model="m")
    assert "engine_args" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"engine": "onnx"}, "engine"),
        ({"concurrency": 0}, "concurrency"),
        ({"gpus": "a,b"}, "gpus"),
        ({"redis_url": "amqp://x"}, "redis_url"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_name_the_field(options, field):
    with pytest.raises(ValidationError) as caught:
        WorkerSettings(**options)
    assert field in str(caught.value)
