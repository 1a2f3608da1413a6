"""`inferq batch run|resume`, as processes, against real workers: every line answered exactly once."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from api_client.jobs import idempotent_job_id
from batch.journal import Manifest, lock_path, manifest_path
from batch.runner import line_key

# Bounds for failure only: each wait ends as soon as what it waits for is there.
PATIENCE_S = 300


@pytest.fixture(scope="module")
def batch_worker(start_worker):
    # Room for a whole window (24): a held line never keeps a quick one from a slot, whatever the submit order.
    worker = start_worker("echo", "batch-echo", engine="echo", concurrency=24)
    yield worker
    worker.stop()


def _inferq_args(*args):
    return [sys.executable, "-m", "cli.main", "batch", *args]


def _env(redis_url):
    # a run SIGKILLed between saving a line's job and sending it: its resume sends the line after 5 s, not 30
    return {**os.environ, "INFERQ_REDIS_URL": redis_url, "INFERQ_NO_WORKER_GRACE_S": "1", "INFERQ_SEND_GRACE_S": "5"}


def _batch(redis_url, *args):
    return subprocess.run(_inferq_args(*args), env=_env(redis_url), capture_output=True, text=True, timeout=PATIENCE_S)


def _lines(path):  # split at "\n" alone, as JSON lines are: an answer may hold U+2028 raw
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def _chat(custom_id, text, model="batch-echo"):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line, ensure_ascii=False)


def test_an_openai_batch_file_answers_each_line_once_and_reports_bad_lines(
    redis_url, batch_worker, echo_scorer_worker, tmp_path
):
    lines = [_chat(f"q{i}", f"answer {i}") for i in range(20)]
    lines.append(
        json.dumps({"custom_id": "s", "url": "/v1/score", "body": {"model": "echo-rm", "messages": ["a b c"]}})
    )
    lines += ["{broken", _chat("q3", "again"), _chat("lost", "hello", model="nobody-serves-this")]
    # a custom_id at the format's 512 characters (its job's key is hashed), and raw line separators in JSON
    lines += [_chat("x" * 512, "a long id"), _chat("separators", "one\u2028two\u2029three")]
    lines.append(_chat("latin", "caf\udce9"))  # the byte 0xe9 alone (Latin-1's é): not UTF-8, refused by its line
    (tmp_path / "in.jsonl").write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
    output = tmp_path / "out.jsonl"
    result = _batch(redis_url, "run", str(tmp_path / "in.jsonl"), "-o", str(output), "--window", "4")
    assert result.returncode == 0, result.stderr
    answered = {line["custom_id"]: line for line in _lines(output)}
    assert len(_lines(output)) == len(answered) == 23
    assert answered["q7"]["response"]["body"]["choices"][0]["message"]["content"] == "answer 7"
    assert answered["x" * 512]["response"]["body"]["choices"][0]["message"]["content"] == "a long id"
    # the echo engine splits words at any whitespace, U+2028 and U+2029 included: the line ran whole
    assert answered["separators"]["response"]["body"]["choices"][0]["message"]["content"] == "one two three"
    assert answered["s"]["response"]["body"]["scores"] == [3.0]
    errors = _lines(tmp_path / "out.jsonl.errors.jsonl")
    assert [
        (line["custom_id"], line["error"] and line["error"]["line"]) for line in errors if line["response"] is None
    ] == [
        (None, 22),
        (None, 23),  # a second q3: without its custom_id, so that q3 has one result, its first line's
        (None, 27),
    ]
    [latin] = [line for line in errors if line["error"] and line["error"]["line"] == 27]
    assert latin["error"]["message"] == "is not UTF-8 text (byte 0xe9)"
    [lost] = [line for line in errors if line["response"] is not None]
    assert lost["custom_id"] == "lost" and lost["response"]["status_code"] == 404
    assert lost["response"]["body"]["error"]["code"] == "model_not_found"
    assert "27 lines: 23 answered" in result.stdout


def test_a_dataset_batch_killed_halfway_resumes_without_running_a_line_twice(redis_url, batch_worker, tmp_path):
    release = tmp_path / "release"
    examples = [{"instruction": f"say {i}", "output": f"said {i}"} for i in range(8)]
    examples += [{"instruction": f"wait [wait:{release}] {i}", "output": f"waited {i}"} for i in range(8, 24)]
    (tmp_path / "data.json").write_text(json.dumps(examples))
    output, predictions = tmp_path / "out.jsonl", tmp_path / "generated_predictions.jsonl"
    args = ["run", str(tmp_path / "data.json"), "-o", str(output), "--model", "batch-echo", "--window", "24",
            "--predictions", str(predictions)]  # fmt: skip
    first = subprocess.Popen(_inferq_args(*args), env=_env(redis_url), stderr=subprocess.DEVNULL)
    give_up_at = time.monotonic() + PATIENCE_S
    while not (output.exists() and len(output.read_text().splitlines()) == 8) and time.monotonic() < give_up_at:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # with 16 lines in flight: their jobs are queued or running
    first.wait()
    assert len(_lines(output)) == 8 and not predictions.exists()
    release.touch()
    resumed = _batch(redis_url, "resume", str(output))
    assert resumed.returncode == 0, resumed.stderr
    answered = _lines(output)
    assert sorted(line["custom_id"] for line in answered) == sorted(f"example-{i}" for i in range(24))
    batch_id = json.loads((tmp_path / "out.jsonl.batch.json").read_text())["batch_id"]
    # the resumed lines are the jobs the killed run submitted (a job id runs once), not new ones
    for line in answered:
        assert line["response"]["request_id"] == idempotent_job_id(None, line_key(batch_id, line["custom_id"]))
    rows = _lines(predictions)
    assert [row["label"] for row in rows] == [example["output"] for example in examples]
    assert rows[0] == {"prompt": "say 0", "predict": "say 0", "label": "said 0"}
    again = _batch(redis_url, "run", str(tmp_path / "data.json"), "-o", str(output), "--model", "batch-echo")
    assert again.returncode != 0 and "inferq batch resume" in again.stderr


def test_what_is_wrong_with_the_input_is_said_by_name_and_leaves_no_batch_behind(redis_url, tmp_path):
    output = tmp_path / "out.jsonl"
    missing = _batch(redis_url, "run", str(tmp_path / "nowhere.jsonl"), "-o", str(output))
    assert missing.returncode == 1 and "nowhere.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "data.json").write_text(json.dumps([{"instruction": "hi", "output": "hello"}]))
    no_model = _batch(redis_url, "run", str(tmp_path / "data.json"), "-o", str(output))
    assert no_model.returncode == 1 and "model" in no_model.stderr
    assert not (tmp_path / "out.jsonl.batch.json").exists()  # so the same run, mended, can start
    output.write_text(_chat("old", "someone else's answer") + "\n")
    taken = _batch(redis_url, "run", str(tmp_path / "data.json"), "-o", str(output), "--model", "batch-echo")
    assert taken.returncode != 0 and "belongs to no batch" in taken.stderr


def test_a_torn_first_line_is_refused_alone_and_resume_refuses_a_changed_input(redis_url, batch_worker, tmp_path):
    requests = tmp_path / "in.jsonl"
    requests.write_text("\n".join(['{"custom_id": "torn', _chat("whole", "still runs")]) + "\n")
    (tmp_path / "elsewhere").mkdir()
    # relative paths, and a resume from another directory: the manifest holds where the files are
    run = subprocess.run(_inferq_args("run", "in.jsonl", "-o", "out.jsonl"), env=_env(redis_url), cwd=tmp_path,
                         capture_output=True, text=True, timeout=PATIENCE_S)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [line["custom_id"] for line in _lines(tmp_path / "out.jsonl")] == ["whole"]
    assert [line["error"]["line"] for line in _lines(tmp_path / "out.jsonl.errors.jsonl")] == [1]
    again = subprocess.run(_inferq_args("resume", "../out.jsonl"), env=_env(redis_url), cwd=tmp_path / "elsewhere",
                           capture_output=True, text=True, timeout=PATIENCE_S)  # fmt: skip
    assert again.returncode == 0 and "2 lines: 1 answered" in again.stdout, again.stderr
    requests.write_text(_chat("whole", "another question") + "\n")  # the same custom_id, another request
    changed = _batch(redis_url, "resume", str(tmp_path / "out.jsonl"))
    assert changed.returncode == 1 and "changed since the batch started" in changed.stderr


def test_a_run_or_resume_on_an_output_another_one_holds_is_refused(redis_url, tmp_path):
    (tmp_path / "in.jsonl").write_text(_chat("q", "hello", model="nobody-serves-this") + "\n")
    output = tmp_path / "out.jsonl"
    with lock_path(output).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run or resume on this output holds it
        run = _batch(redis_url, "run", str(tmp_path / "in.jsonl"), "-o", str(output))
        assert run.returncode == 1 and "another `inferq batch` is running on" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and not manifest_path(output).exists()
        manifest = Manifest(batch_id="b", input=str(tmp_path / "in.jsonl"), model=None,
                            errors=str(tmp_path / "out.jsonl.errors.jsonl"), window=4)  # fmt: skip
        manifest_path(output).write_text(manifest.model_dump_json())
        resume = _batch(redis_url, "resume", str(output))
        assert resume.returncode == 1 and "another `inferq batch` is running on" in resume.stderr, resume.stderr
    assert not output.exists() and not (tmp_path / "out.jsonl.errors.jsonl").exists()  # neither wrote a line


def test_lone_surrogates_in_a_dataset_fail_their_line_and_are_kept_as_escapes(redis_url, batch_worker, tmp_path):
    # JSON's "\ud800" escape makes a string UTF-8 cannot encode: a prompt holding one fails its line, a label
    # holding one is written to the predictions as the input spelt it; neither stops the batch
    examples = [{"instruction": "bad \udfff text"}, {"instruction": "fine", "output": "label \ud800"}]
    (tmp_path / "data.json").write_text(json.dumps(examples))  # json.dumps escapes a lone surrogate
    output, predictions = tmp_path / "out.jsonl", tmp_path / "generated_predictions.jsonl"
    run = _batch(redis_url, "run", str(tmp_path / "data.json"), "-o", str(output), "--model", "batch-echo",
                 "--predictions", str(predictions))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [line["custom_id"] for line in _lines(output)] == ["example-1"]
    [failed] = _lines(tmp_path / "out.jsonl.errors.jsonl")
    assert failed["custom_id"] == "example-0" and failed["response"]["status_code"] == 400
    assert "surrogate" in failed["response"]["body"]["error"]["message"]
    assert "\\ud800" in predictions.read_text() and _lines(predictions)[0]["label"] == "label \ud800"
    resumed = _batch(redis_url, "resume", str(output))
    assert resumed.returncode == 0 and "2 lines: 1 answered" in resumed.stdout, resumed.stderr


def test_a_custom_id_that_reads_like_a_refused_lines_id_still_runs_on_resume(redis_url, batch_worker, tmp_path):
    release = tmp_path / "release"
    (tmp_path / "in.jsonl").write_text("\n".join(["{broken", _chat("batch_req_line-0", f"[wait:{release}] x")]) + "\n")
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.jsonl.errors.jsonl"
    first = subprocess.Popen(_inferq_args("run", str(tmp_path / "in.jsonl"), "-o", str(output)), env=_env(redis_url),
                             stderr=subprocess.DEVNULL)  # fmt: skip
    give_up_at = time.monotonic() + PATIENCE_S
    while not (errors.exists() and errors.read_text().endswith("\n")) and time.monotonic() < give_up_at:
        time.sleep(0.1)  # line 0's refusal is written before any line is submitted
    first.send_signal(signal.SIGKILL)  # line 1 waits for the release: surely not answered
    first.wait()
    assert [line["id"] for line in _lines(errors)] == ["batch_req_line-0"] and not _lines_if(output)
    release.touch()
    resumed = _batch(redis_url, "resume", str(output))
    assert resumed.returncode == 0 and "2 lines: 1 answered" in resumed.stdout, resumed.stderr
    assert [line["custom_id"] for line in _lines(output)] == ["batch_req_line-0"]


def _lines_if(path):
    return _lines(path) if path.exists() else []
