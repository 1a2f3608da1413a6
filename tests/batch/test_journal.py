"""A batch's journal: what is done, read back from its output files, a torn last line cut off."""

import json

from batch.journal import Journal, dumps

ANSWER = {"status_code": 200, "request_id": "j", "body": {}}


def test_a_torn_last_line_is_cut_off_and_its_line_counts_as_not_done(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    output.write_text(json.dumps({"id": "r1", "custom_id": "a", "response": ANSWER}) + "\n" + '{"id": "r2", "custom_i')
    errors.write_text(json.dumps({"id": "batch_req_line-3", "custom_id": None, "response": None}) + "\n")
    journal = Journal(output, errors)
    assert journal.done() == {"a", "batch_req_line-3"}
    assert output.read_text().endswith("}\n")  # the torn line is gone, so the next write starts a line
    journal.write({"id": "r2", "custom_id": "b", "response": ANSWER}, succeeded=True)
    journal.close()
    assert set(Journal(output, errors).answered()) == {"a", "b"}


def test_a_refused_duplicate_leaves_the_line_whose_custom_id_it_repeats_to_run(tmp_path):
    # a first run refused line 4 (a second "a") and was killed before line 0 ("a") was answered
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    refusal = {"id": "batch_req_line-4", "custom_id": "a", "response": None, "error": {"code": "invalid_request"}}
    errors.write_text(json.dumps(refusal) + "\n")
    assert Journal(output, errors).done() == {"batch_req_line-4"}  # not "a": that line still runs on resume


def test_answers_holding_unicode_line_separators_read_back_whole(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    text = "one\u2028two\u2029three\x85four"  # JSON keeps them raw; str.splitlines would cut the line there
    journal = Journal(output, errors)
    journal.write({"id": "r1", "custom_id": "a", "response": {**ANSWER, "body": {"text": text}}}, succeeded=True)
    journal.close()
    assert dumps({"t": text}).count("\n") == 1
    assert Journal(output, errors).answered()["a"]["response"]["body"]["text"] == text
