"""The HF engine alone (no queue) against plain transformers, measured side by side in one run.

- padded-batch bound: plain transformers `generate()` on the same prompts as one left-padded batch,
  the best a static batch can do on this machine;
- serial: one request at a time, which is what LLaMA-Factory's HF engine does (MAX_CONCURRENT=1).
Ratios are what to compare across machines; absolute tokens/s depend on the hardware.
"""

from __future__ import annotations

import asyncio
import time

import torch
from rich.console import Console
from transformers import AutoModelForCausalLM

from benchmarks.engine_queue import conversations
from benchmarks.results import Row
from engines import load_engine
from engines.default_model import resolve_model


def measure(model: str, num_requests: int, new_tokens: int, console: Console) -> list[Row]:
    """Runs its own event loop: call it outside one."""
    path = resolve_model(model)
    prompts = conversations(num_requests)
    with console.status("bound: loading and warming up"):
        engine = load_engine("huggingface", path, max_batch_size=max(num_requests, 1))
    inferq_tps, serial_tps = asyncio.run(_engine_runs(console, engine, prompts, new_tokens))
    with console.status("bound: generate() on one left-padded batch"):
        bound_tps = _padded_batch(path, engine.tokenizer, prompts, new_tokens)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = f"{num_requests} concurrent x {new_tokens} tok on {device}"
    bound = "padded-batch generate()"
    return [
        Row("bound", f"hf engine tok/s, {size}", "tok/s", inferq_tps, bound_tps, bound),
        Row("bound", f"serial (LLaMA-Factory) tok/s, {size}", "tok/s", serial_tps, bound_tps, bound),
    ]


async def _engine_runs(console, engine, conversations, new_tokens) -> tuple[float, float]:
    # one event loop for every engine call: an engine serves the loop it first ran on
    params = {"temperature": 0, "max_new_tokens": new_tokens}
    await _concurrent(engine, conversations[:2], params)
    with console.status(f"bound: the hf engine, {len(conversations)} concurrent requests"):
        inferq_tps = await _concurrent(engine, conversations, params)
    with console.status("bound: serial, one request at a time"):
        serial_tps = await _serial(engine, conversations[: max(2, len(conversations) // 4)], params)
    await engine.close()
    return inferq_tps, serial_tps


async def _concurrent(engine, conversations, params) -> float:
    started = time.perf_counter()
    results = await asyncio.gather(*[engine.chat(c, **params) for c in conversations])
    return sum(r[0].response_length for r in results) / (time.perf_counter() - started)


async def _serial(engine, conversations, params) -> float:
    started = time.perf_counter()
    tokens = 0
    for conversation in conversations:
        tokens += (await engine.chat(conversation, **params))[0].response_length
    return tokens / (time.perf_counter() - started)


def _padded_batch(path: str, tokenizer, conversations, new_tokens: int) -> float:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else "auto"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(
        device
    )

    def generate():
        return model.generate(**batch, do_sample=False, max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id)

    with torch.inference_mode():
        generate()  # warm-up
        started = time.perf_counter()
        output = generate()
        elapsed = time.perf_counter() - started
    new = output[:, batch["input_ids"].shape[1] :]
    # count each row's tokens up to and including its end-of-turn token, as the engine does
    eos = torch.tensor(sorted(set(tokenizer.all_special_ids) & {tokenizer.eos_token_id}), device=new.device)
    finished = torch.isin(new, eos).int().cumsum(dim=1)
    generated = ((finished == 0) | ((finished == 1) & torch.isin(new, eos))).sum().item()
    return generated / elapsed
