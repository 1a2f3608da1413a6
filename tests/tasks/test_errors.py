import pickle

import pytest

from engines.errors import EngineOverloaded, InvalidRequest
from tasks.errors import ERRORS, JobCancelled, JobFailed, JobTimeout, NoSuchModel, error_from_info
from tasks.schemas import ErrorInfo, JobRecord, Timings


@pytest.mark.parametrize(
    "error", [InvalidRequest("bad", field="top_p"), EngineOverloaded("oom"), NoSuchModel("gone", field="model")]
)
def test_an_error_crosses_the_queue_as_the_same_class(error):
    info = ErrorInfo.model_validate_json(ErrorInfo.of(error).model_dump_json())
    again = error_from_info(info)
    assert type(again) is type(error)
    assert (again.message, again.field) == (error.message, error.field)


def test_job_errors_carry_the_record():
    record = JobRecord(job_id="j", kind="chat", status="cancelled", model="m", timings=Timings(queued_at=0))
    error = error_from_info(ErrorInfo.of(JobCancelled("stop")), record)
    assert isinstance(error, JobCancelled) and error.record is record


def test_an_unknown_error_type_from_a_newer_worker_becomes_job_failed():
    error = error_from_info(ErrorInfo(type="QuantumError", message="?"))
    assert isinstance(error, JobFailed) and error.message == "?"


def test_every_class_in_the_tree_is_registered_and_pickles_with_its_field():
    assert {"InvalidRequest", "EngineDead", "JobCancelled", "JobTimeout", "NoSuchModel", "JobRestarted"} <= set(ERRORS)
    assert issubclass(JobTimeout, TimeoutError)
    again = pickle.loads(pickle.dumps(InvalidRequest("bad", field="stop")))
    assert again.field == "stop" and str(again) == "stop: bad"
