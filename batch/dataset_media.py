"""A LLaMA-Factory example's media columns, on a job: its `images` as data: URLs, each at its `<image>`.

LLaMA-Factory reads an image path against its `media_dir` (the dataset directory by default), then as given,
and puts the example's images, in order, where its text has `<image>` placeholders (their counts must match).
Here each image travels inside the job as a `data:image/...;base64` URL, the one image reference every
worker takes whatever its media policy and whichever machine it runs on; http(s) and data: URLs are passed
as they are (the worker's policy decides). No inferq engine takes video or audio: an example with either is
refused naming its column, never run as text alone.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from engines.errors import InvalidRequest
from engines.media import MAX_IMAGE_BYTES
from engines.schemas import ImagePart, Message, TextPart

IMAGE_PLACEHOLDER = "<image>"  # LLaMA-Factory's (its IMAGE_PLACEHOLDER)


def with_media(
    example: dict[str, Any], prompt: list[Message], columns: dict[str, str | None], media_dir: Path, working_dir: Path
) -> list[Message]:
    """`prompt` with the example's images in place; refuses an example whose media cannot reach the model. An
    image path is looked for in `media_dir`, then in `working_dir` (where the batch was first run)."""
    for kind, column in (("video", columns["videos"]), ("audio", columns["audios"])):
        if column is not None and example.get(column):
            raise InvalidRequest(f"{kind} input is not served: no inferq engine takes it", field=column)
    column = columns["images"]
    references = _references(example.get(column), column) if column is not None else []
    if not references:
        return prompt
    urls = [
        _data_url(reference, media_dir, working_dir, f"{column}.{number}")
        for number, reference in enumerate(references)
    ]
    return _placed(prompt, urls, column)


def _references(value: Any, column: str) -> list[str]:
    if value is None:
        return []
    references = [value] if isinstance(value, str) else value  # LLaMA-Factory takes one path without a list
    if not isinstance(references, list) or not all(isinstance(reference, str) for reference in references):
        raise InvalidRequest("must be an image path or a list of them", field=column)
    return references


def _data_url(reference: str, media_dir: Path, working_dir: Path, field: str) -> str:
    if reference.startswith(("data:", "http://", "https://")):
        return reference
    path = media_dir / reference
    if not path.is_file():
        # from where the batch was first run (its manifest keeps it): a resume from elsewhere reads the same file
        path = working_dir / reference
        if not path.is_file():
            raise InvalidRequest(f"no image file {reference!r} (in {media_dir}, nor in {working_dir})", field=field)
    mime_type = mimetypes.guess_type(path.name)[0]
    if mime_type is None or not mime_type.startswith("image/"):
        raise InvalidRequest(f"{reference!r} is not an image file by its name", field=field)
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:  # what every worker refuses: refused here, before it is sent
            raise InvalidRequest(f"{reference!r} is larger than {MAX_IMAGE_BYTES} bytes", field=field)
        raw = path.read_bytes()
    except OSError as error:
        raise InvalidRequest(f"cannot read {reference!r}: {error.strerror}", field=field) from None
    return f"data:{mime_type};base64,{base64.b64encode(raw).decode()}"


def _placed(prompt: list[Message], urls: list[str], column: str) -> list[Message]:
    placeholders = sum(message.text().count(IMAGE_PLACEHOLDER) for message in prompt)
    if placeholders != len(urls):
        raise InvalidRequest(f"{len(urls)} images for {placeholders} {IMAGE_PLACEHOLDER} placeholders in the "
                             "prompt: each image goes where one stands", field=column)  # fmt: skip
    remaining = iter(urls)
    placed = []
    for message in prompt:
        pieces = message.text().split(IMAGE_PLACEHOLDER)
        if len(pieces) == 1:
            placed.append(message)
            continue
        parts: list[TextPart | ImagePart] = []
        for number, piece in enumerate(pieces):
            if number:
                parts.append(ImagePart(image=next(remaining)))
            if piece:
                parts.append(TextPart(text=piece))
        placed.append(Message(role=message.role, content=parts))
    return placed
