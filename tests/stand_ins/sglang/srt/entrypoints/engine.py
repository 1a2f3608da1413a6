"""Engine stand-in (srt/entrypoints/engine.py): construction habits, async_generate, shutdown."""

import asyncio
import atexit
import logging
import multiprocessing
import os
import subprocess
import sys
from typing import Dict, List, Optional, Union

import psutil
from transformers import AutoConfig, AutoTokenizer

from sglang.srt.managers.tokenizer_manager import GenerateRequest, TokenizerManager
from sglang.srt.server_args import ServerArgs


class _StandInLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Stands for uvloop's policy, which the real module installs at import (:168)."""


asyncio.set_event_loop_policy(_StandInLoopPolicy())


class Engine:
    def __init__(self, **kwargs):
        if "log_level" not in kwargs:
            kwargs["log_level"] = "error"  # :281-284
        self.server_args = ServerArgs(**kwargs)
        atexit.register(self.shutdown)  # :326
        # _launch_subprocesses / _set_envs_and_config habits (:1129-1381, :1878-1999)
        logging.basicConfig(level=logging.ERROR, force=True)
        multiprocessing.set_start_method("spawn", force=True)
        self._scheduler = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        model_path = self.server_args.model_path
        config = AutoConfig.from_pretrained(model_path)
        context_len = self.server_args.context_length or config.max_position_embeddings
        self.tokenizer_manager = TokenizerManager(self.server_args, AutoTokenizer.from_pretrained(model_path), context_len)

    async def async_generate(
        self,
        prompt: Optional[Union[List[str], str]] = None,
        sampling_params: Optional[Union[List[Dict], Dict]] = None,
        input_ids: Optional[Union[List[List[int]], List[int]]] = None,
        image_data=None,
        audio_data=None,
        video_data=None,
        return_logprob: Optional[Union[List[bool], bool]] = False,
        logprob_start_len: Optional[Union[List[int], int]] = None,
        top_logprobs_num: Optional[Union[List[int], int]] = None,
        lora_path: Optional[List[Optional[str]]] = None,
        stream: bool = False,
        rid: Optional[Union[List[str], str]] = None,
        priority: Optional[int] = None,
    ):
        obj = GenerateRequest(
            text=prompt, input_ids=input_ids, sampling_params=sampling_params or {}, image_data=image_data,
            lora_path=lora_path, stream=stream, rid=rid, return_logprob=return_logprob,
            top_logprobs_num=top_logprobs_num or 0, priority=priority,
        )  # fmt: skip
        generator = self.tokenizer_manager.generate_request(obj, None)
        if stream is True:
            return generator
        return await generator.__anext__()

    def shutdown(self):
        # kill_process_tree(os.getpid(), include_parent=False): every child of the host, not only its own
        for child in psutil.Process(os.getpid()).children(recursive=True):
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
