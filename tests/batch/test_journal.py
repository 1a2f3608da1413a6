"""A batch's journal: what is done, read back from its output files, a torn last line cut off."""

import json

from batch.journal import Journal


def test_a_torn_last_line_is_cut_off_and_its_line_counts_as_not_done(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    output.write_text(json.dumps({"id": "r1", "custom_id": "a"}) + "\n" + '{"id": "r2", "custom_i')
    errors.write_text(json.dumps({"id": "batch_req_line-3", "custom_id": None}) + "\n")
    journal = Journal(output, errors)
    assert journal.done() == {"a", "batch_req_line-3"}
    assert output.read_text().endswith("}\n")  # the torn line is gone, so the next write starts a line
    journal.write({"id": "r2", "custom_id": "b"}, succeeded=True)
    journal.close()
    assert set(Journal(output, errors).answered()) == {"a", "b"}
