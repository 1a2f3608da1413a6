"""How a conversation with past tool calls reaches a chat template."""

from engines.schemas import parse_messages
from engines.tools.formats import FORMATS
from engines.tools.rendering import template_turns

CALL_ID = "call_0123456789abcdef01234567"  # inferq's own ids (OpenAI's look alike)


def test_mistrals_template_gets_the_same_nine_alphanumerics_for_a_call_and_its_answer():
    messages = parse_messages(
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": CALL_ID, "name": "f", "arguments": "{}"}]},
            {"role": "tool", "tool_call_id": CALL_ID, "content": "sunny"},
        ]
    )  # fmt: skip
    turns, _ = template_turns(messages, None, None, FORMATS["mistral"], True, lambda message: message.text())
    called, answered = turns[1]["tool_calls"][0]["id"], turns[2]["tool_call_id"]
    assert called == answered == CALL_ID[-9:]  # the last nine, as vLLM keeps
    short_id = parse_messages([{"role": "tool", "tool_call_id": "c-1", "content": "x"}])
    short, _ = template_turns(short_id, None, None, FORMATS["mistral"], True, lambda message: message.text())
    assert short[0]["tool_call_id"] == "0000000c1"  # letters and digits only, zero-padded to nine
    hermes, _ = template_turns(messages, None, None, FORMATS["hermes"], True, lambda message: message.text())
    assert hermes[2]["tool_call_id"] == CALL_ID  # other families get the id as it came
