"""LLaMA-Factory datasets (alpaca, sharegpt, dataset_info.json entries) as batch lines."""

import json

import pytest

from batch.lines import BatchLine, LineError
from batch.llamafactory_lines import dataset_lines
from engines.errors import InvalidRequest


def roles(line):
    return [(message.role, message.content) for message in line.messages]


def test_an_alpaca_example_is_its_history_then_instruction_and_input(tmp_path):
    path = tmp_path / "alpaca.json"
    examples = [
        {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "Be brief.",
         "history": [["hi", "hey"]]},
        {"instruction": "Say yes", "output": "yes"},
    ]  # fmt: skip
    path.write_text(json.dumps(examples))
    first, second = dataset_lines(str(path), "m")
    assert roles(first) == [("system", "Be brief."), ("user", "hi"), ("assistant", "hey"),
                            ("user", "Translate\nbonjour")]  # fmt: skip
    assert (first.custom_id, first.label, first.model) == ("example-0", "hello", "m")
    assert roles(second) == [("user", "Say yes")]


def test_a_dataset_info_entry_with_its_own_columns_and_tags(tmp_path):
    rows = [{"chat": [{"who": "me", "text": "2+2?"}, {"who": "bot", "text": "4"}]},
            {"chat": [{"who": "me", "text": "no answer yet"}]},
            {"chat": [{"who": "alien", "text": "?"}]}]  # fmt: skip
    (tmp_path / "rows.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n{broken\n")
    entry = {"file_name": "rows.jsonl", "formatting": "sharegpt", "columns": {"messages": "chat"},
             "tags": {"role_tag": "who", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}}  # fmt: skip
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": entry}))
    answered, open_ended, alien, broken = dataset_lines("mine", "m", dataset_dir=str(tmp_path))
    assert roles(answered) == [("user", "2+2?")] and answered.label == "4"
    assert roles(open_ended) == [("user", "no answer yet")] and open_ended.label is None
    assert isinstance(alien, LineError) and alien.param == "chat.0"
    assert isinstance(broken, LineError) and "not JSON" in broken.message and broken.index == 3


def test_scoring_a_dataset_scores_each_answer_in_its_conversation(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"instruction": "q", "output": "a"}, {"instruction": "q"}]))
    scored, unanswered = dataset_lines(str(path), "rm", score=True)
    assert isinstance(scored, BatchLine) and scored.url == "/v1/score"
    assert [(m.role, m.content) for m in scored.conversations[0]] == [("user", "q"), ("assistant", "a")]
    assert isinstance(unanswered, LineError) and unanswered.param == "response"


def test_an_entry_that_is_not_there_names_the_dataset(tmp_path):
    (tmp_path / "dataset_info.json").write_text("{}")
    with pytest.raises(InvalidRequest) as caught:
        list(dataset_lines("missing", "m", dataset_dir=str(tmp_path)))
    assert caught.value.field == "dataset"


def test_a_file_of_messages_reads_role_and_content(tmp_path):
    # LLaMA-Factory's "OpenAI format": sharegpt with a messages column and role/content tags, the system first
    path = tmp_path / "chats.jsonl"
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
             {"role": "assistant", "content": "4"}]  # fmt: skip
    unknown = {"messages": [{"role": "bot", "content": "?"}]}
    path.write_text(json.dumps({"messages": turns}) + "\n" + json.dumps(unknown))
    answered, unknown_role = dataset_lines(str(path), "m")
    assert roles(answered) == [("system", "Be brief."), ("user", "2+2?")] and answered.label == "4"
    assert isinstance(unknown_role, LineError) and unknown_role.param == "messages.0"
    assert "role (one of user, assistant, system)" in unknown_role.message


def test_an_entry_reads_only_the_columns_it_maps_as_llamafactory_does(tmp_path):
    example = {"instruction": "Say yes", "q": "Say no", "output": "yes", "a": "no", "system": "Be rude.",
               "history": [["hi", "hey"]]}  # fmt: skip
    (tmp_path / "rows.json").write_text(json.dumps([example]))
    info = {
        "plain": {"file_name": "rows.json"},  # no columns: instruction, input, output; no system nor history
        "mapped": {"file_name": "rows.json", "columns": {"prompt": "q", "response": "a"}},
        "with_system": {"file_name": "rows.json", "columns": {"prompt": "q", "system": "system"}},
        "nothing_to_ask": {"file_name": "rows.json", "columns": {"response": "a"}},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    [plain] = dataset_lines("plain", "m", dataset_dir=str(tmp_path))
    assert roles(plain) == [("user", "Say yes")] and plain.label == "yes"
    [mapped] = dataset_lines("mapped", "m", dataset_dir=str(tmp_path))
    assert roles(mapped) == [("user", "Say no")] and mapped.label == "no"
    [with_system] = dataset_lines("with_system", "m", dataset_dir=str(tmp_path))
    assert roles(with_system) == [("system", "Be rude."), ("user", "Say no")] and with_system.label is None
    with pytest.raises(InvalidRequest) as caught:
        list(dataset_lines("nothing_to_ask", "m", dataset_dir=str(tmp_path)))
    assert caught.value.field == "dataset" and "prompt or query" in caught.value.message
