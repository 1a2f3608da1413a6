"""inferq's error tree in OpenAI's shape: the status and code each error gets, and what of its message a
tenant may read (inferq's own words; never an engine's exception text)."""

from engines.errors import EngineError, EngineOverloaded, EngineUnavailable, InvalidRequest
from gateway.errors import api_error_of
from tasks.errors import JobFailed, JobRestarted, error_from_info
from tasks.schemas import ErrorInfo, JobRecord, Timings


def test_an_invalid_request_names_the_field_as_the_client_sent_it():
    error = api_error_of(InvalidRequest("too many", field="max_new_tokens"), {"max_new_tokens": "max_tokens"})
    assert (error.status, error.param, error.message) == (400, "max_tokens", "max_tokens: too many")


def test_an_engines_exception_text_never_reaches_the_tenant():
    for raised, status, code in [
        (EngineError("RuntimeError: /models/secret/weights.bin"), 502, "engine_error"),
        (EngineOverloaded("out of memory: /models/secret"), 503, "engine_overloaded"),
        (JobFailed("ValueError: /models/secret"), 500, "job_failed"),
    ]:
        error = api_error_of(raised)
        assert (error.status, error.code) == (status, code) and "secret" not in error.message


def test_an_engine_failure_read_from_a_record_names_its_job():
    record = JobRecord(job_id="j-42", kind="chat", status="failed", model="m", timings=Timings(queued_at=0.0),
                       error=ErrorInfo(type="EngineError", message="RuntimeError: /models/secret"))  # fmt: skip
    error = api_error_of(error_from_info(record.error, record))
    assert error.status == 502 and "j-42" in error.message and "secret" not in error.message


def test_inferqs_own_words_pass_on():
    restarted = api_error_of(JobRestarted("the job's worker died; stream it again"))
    assert (restarted.status, restarted.code, restarted.message) == (
        503, "job_restarted", "the job's worker died; stream it again"
    )  # fmt: skip
    assert "pip install" in api_error_of(EngineUnavailable("needs `pip install x`")).message
