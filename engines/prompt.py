"""Messages to prompt tokens, with the model's own chat template; shared by every engine.

Every backend here serves a HuggingFace tokenizer, so templating happens once, before the backend
sees the request: the prompt an engine runs is exactly the prompt whose length was checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engines.errors import InvalidRequest
from engines.reasoning import template_thinks
from engines.schemas import AudioPart, ImagePart, MediaKind, Message, TextPart, VideoPart
from engines.tool_schemas import FunctionTool
from engines.tools.formats import FORMATS, ToolFormatName, detect_format, renders_tools
from engines.tools.rendering import named_turn, template_turns

_PART_FOR_KIND = {"image": ImagePart, "video": VideoPart, "audio": AudioPart}


def attach_media(
    messages: list[Message],
    images: Sequence[str] | None,
    videos: Sequence[str] | None,
    audios: Sequence[str] | None,
) -> list[Message]:
    """LLaMA-Factory's `images=`/`videos=`/`audios=` become leading parts of the first user message."""
    extra = [
        _PART_FOR_KIND[kind](**{kind: ref})
        for kind, refs in (("image", images), ("video", videos), ("audio", audios))
        for ref in refs or ()
    ]
    if not extra:
        return messages
    first_user = next((i for i, m in enumerate(messages) if m.role == "user"), None)
    if first_user is None:
        raise InvalidRequest("media needs a user message to attach to", field="messages")
    target = messages[first_user]
    parts = [TextPart(text=target.content)] if isinstance(target.content, str) else list(target.content)
    messages = list(messages)
    messages[first_user] = Message(role="user", content=[*extra, *parts])
    return messages


def check_media(messages: list[Message], supported: frozenset[MediaKind]) -> dict[MediaKind, list[tuple[str, str]]]:
    """The media references in prompt order, each with its field, refusing kinds the model cannot take."""
    media: dict[MediaKind, list[tuple[str, str]]] = {}
    for i, message in enumerate(messages):
        if message.content is None or isinstance(message.content, str):
            continue
        for j, part in enumerate(message.content):
            if isinstance(part, TextPart):
                continue
            if part.type not in supported:
                accepted = ", ".join(sorted(supported)) or "text only"
                raise InvalidRequest(
                    f"this model takes no {part.type} input (accepts: {accepted})", field=f"messages.{i}.content.{j}"
                )
            media.setdefault(part.type, []).append((getattr(part, part.type), f"messages.{i}.content.{j}"))
    return media


def build_prompt(
    tokenizer: Any,
    messages: list[Message],
    system: str | None,
    tools: list[FunctionTool] | None = None,
    tool_format: ToolFormatName = "hermes",
) -> tuple[str, list[int]]:
    """Returns the templated prompt and its token ids; `tools` are offered to the model (engines/tools/)."""
    if system is not None and messages[0].role == "system":
        raise InvalidRequest("given both as `system` and as a first system message", field="system")
    if messages[-1].role not in ("user", "tool"):
        raise InvalidRequest(
            "the last message must come from the user or a tool; the model answers it", field="messages"
        )
    for i, message in enumerate(messages[1:], start=1):
        if message.role == "system":
            raise InvalidRequest("a system message may only come first", field=f"messages.{i}.role")
    native = renders_tools(tokenizer.chat_template)
    conversation, tool_schemas = template_turns(
        messages, system, tools, FORMATS[tool_format], native, _template_content
    )
    try:
        text = _render(tokenizer, conversation, tool_schemas)
    except Exception as exc:  # jinja2 raises TemplateError subclasses and plain exceptions from `raise_exception`
        text = _rendered_without_a_system_turn(tokenizer, conversation, tool_schemas)
        if text is None:
            raise InvalidRequest(
                f"the model's chat template refused the conversation: {exc}", field="messages"
            ) from None
    # Same call apply_chat_template(tokenize=True) makes: the template already holds the special tokens.
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text, list(prompt_ids)


def _render(tokenizer: Any, conversation: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    return tokenizer.apply_chat_template(conversation, tools=tools, add_generation_prompt=True, tokenize=False)


def _rendered_without_a_system_turn(
    tokenizer: Any, conversation: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> str | None:
    """A template that refuses a system turn (Gemma 2's) gets it at the head of the first user turn, as
    LLaMA-Factory's templates for such models write it; None when that is no way out either."""
    if len(conversation) < 2 or conversation[0]["role"] != "system" or conversation[1]["role"] != "user":
        return None
    system, first = conversation[0]["content"], conversation[1]
    content = first["content"]
    if isinstance(content, str):
        folded = f"{system}\n\n{content}"
    else:
        folded = [{"type": "text", "text": f"{system}\n\n"}, *content]
    try:
        return _render(tokenizer, [{**first, "content": folded}, *conversation[2:]], tools)
    except Exception:
        return None


def render_conversation(tokenizer: Any, messages: list[Message]) -> str:
    """A whole conversation, its answer included, as the model's chat template writes it and with no
    generation prompt after it: the text a reward model trained on templated chats is meant to score."""
    conversation = [named_turn(m, _template_content(m)) for m in messages]
    try:
        return tokenizer.apply_chat_template(conversation, add_generation_prompt=False, tokenize=False)
    except Exception as exc:  # as in build_prompt: jinja2's errors and the template's raise_exception
        raise InvalidRequest(
            f"the model's chat template refused the conversation: {exc}", field="conversations"
        ) from None


def _template_content(message: Message) -> str | list[dict[str, str]]:
    if message.content is None:
        return ""  # an assistant turn that only called tools (templates concatenate content as a string)
    if isinstance(message.content, str):
        return message.content
    if not message.media():
        return message.text()
    # HuggingFace multimodal templates place one placeholder per {"type": kind} entry.
    return [{"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": p.type} for p in message.content]


def prepare_tokenizer(tokenizer: Any, chat_template: str | None) -> None:
    """Applies a chat template override and checks that the model has a template at all."""
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequest(
            "the tokenizer has no chat template; pass one with engine_args.chat_template",
            field="engine_args.chat_template",
        )


def end_of_turn_ids(tokenizer: Any, generation_eos: int | list[int] | None) -> tuple[int, ...]:
    """Tokens that end an answer: the tokenizer's EOS and the generation config's (which lists end-of-turn)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids.update([generation_eos] if isinstance(generation_eos, int) else generation_eos or [])
    return tuple(sorted(ids))


def output_habits(tokenizer: Any, tool_format: str, reasoning: str) -> tuple[ToolFormatName | None, bool]:
    """How the model writes tool calls (None: in a syntax inferq cannot read) and whether it thinks first: the
    worker's choice, else its template's."""
    template = tokenizer.chat_template or ""
    chosen_format = detect_format(template) if tool_format == "auto" else tool_format
    thinks = template_thinks(template) if reasoning == "auto" else reasoning == "think"
    return chosen_format, thinks
