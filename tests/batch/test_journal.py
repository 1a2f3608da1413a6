"""A batch's journal: what is done, read back from its output files, a torn last line cut off."""

import json

from batch.journal import DoneLines, Journal, dumps

ANSWER = {"status_code": 200, "request_id": "j", "body": {}}


def test_a_torn_last_line_is_cut_off_and_its_line_counts_as_not_done(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    output.write_text(json.dumps({"id": "r1", "custom_id": "a", "response": ANSWER}) + "\n" + '{"id": "r2", "custom_i')
    errors.write_text(json.dumps({"id": "batch_req_line-3", "custom_id": None, "response": None}) + "\n")
    journal = Journal(output, errors)
    assert journal.done() == DoneLines(custom_ids={"a"}, refusal_ids={"batch_req_line-3"})
    assert output.read_text().endswith("}\n")  # the torn line is gone, so the next write starts a line
    journal.write({"id": "r2", "custom_id": "b", "response": ANSWER}, succeeded=True)
    journal.close()
    assert set(Journal(output, errors).answered()) == {"a", "b"}


def test_a_refused_duplicate_leaves_the_line_whose_custom_id_it_repeats_to_run(tmp_path):
    # a first run refused line 4 (a second "a") and was killed before line 0 ("a") was answered
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    refusal = {"id": "batch_req_line-4", "custom_id": "a", "response": None, "error": {"code": "invalid_request"}}
    errors.write_text(json.dumps(refusal) + "\n")
    assert Journal(output, errors).done() == DoneLines(custom_ids=set(), refusal_ids={"batch_req_line-4"})


def test_a_custom_id_that_reads_like_a_refusal_id_is_not_taken_for_the_refused_line(tmp_path):
    # line 0 was refused (bad JSON); line 1, whose custom_id is "batch_req_line-0", was answered
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    errors.write_text(json.dumps({"id": "batch_req_line-0", "custom_id": None, "response": None}) + "\n")
    assert "batch_req_line-0" not in Journal(output, errors).done().custom_ids  # so line 1 runs on resume
    output.write_text(json.dumps({"id": "r1", "custom_id": "batch_req_line-0", "response": ANSWER}) + "\n")
    both = {"batch_req_line-0"}
    assert Journal(output, errors).done() == DoneLines(custom_ids=both, refusal_ids=both)


def test_a_lone_surrogate_is_written_as_its_json_escape_and_read_back(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    journal = Journal(output, errors)  # a custom_id an input spelt "\\ud800": raw, UTF-8 cannot write it
    journal.write({"id": "r1", "custom_id": "a\ud800", "response": {**ANSWER, "body": {"text": "é"}}}, succeeded=False)
    journal.close()
    assert "\\ud800" in errors.read_text(encoding="utf-8") and "é" in errors.read_text(encoding="utf-8")
    assert Journal(output, errors).done().custom_ids == {"a\ud800"}


def test_answers_holding_unicode_line_separators_read_back_whole(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    text = "one\u2028two\u2029three\x85four"  # JSON keeps them raw; str.splitlines would cut the line there
    journal = Journal(output, errors)
    journal.write({"id": "r1", "custom_id": "a", "response": {**ANSWER, "body": {"text": text}}}, succeeded=True)
    journal.close()
    assert dumps({"t": text}).count("\n") == 1
    assert Journal(output, errors).answered()["a"]["response"]["body"]["text"] == text
