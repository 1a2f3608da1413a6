"""Request objects (srt/managers/io_struct.py:1204 upstream, :761 in sglang-kt): the fields inferq uses."""

from dataclasses import dataclass, field
from typing import List, Optional, Union


@dataclass
class EmbeddingReqInput:
    rid: Optional[Union[str, List[str]]] = field(default=None, kw_only=True)
    text: Optional[Union[List[str], str]] = None
    input_ids: Optional[Union[List[List[int]], List[int]]] = None
    image_data: Optional[list] = None
