"""`inferq bench`: the HF engine's throughput, measured side by side with its baselines in one run.

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
from rich.table import Table
from transformers import AutoModelForCausalLM

from engines import load_engine
from engines.default_model import resolve_model

TOPICS = ["dragon", "lighthouse", "robot", "garden", "comet", "violin", "desert", "library"]


def run(model: str, num_requests: int, new_tokens: int) -> int:
    console = Console()
    path = resolve_model(model)
    conversations = [
        [{"role": "user", "content": f"Write a long story about a {TOPICS[i % len(TOPICS)]} (number {i})."}]
        for i in range(num_requests)
    ]
    with console.status("loading and warming up"):
        engine = load_engine("huggingface", path, max_batch_size=max(num_requests, 1))
    inferq_tps, serial_tps = asyncio.run(_engine_runs(console, engine, conversations, new_tokens))
    with console.status("padded-batch bound: generate() on one left-padded batch"):
        bound_tps = _padded_batch(path, engine.tokenizer, conversations, new_tokens)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    table = Table(title=f"hf engine on {device}, {num_requests} concurrent x {new_tokens} tok ({model})")
    for column in ("run", "tok/s", "vs padded-batch bound"):
        table.add_column(column, justify="right")
    for label, tps in (
        ("inferq (continuous batching)", inferq_tps),
        ("padded-batch bound", bound_tps),
        ("serial (LLaMA-Factory)", serial_tps),
    ):
        table.add_row(label, f"{tps:.1f}", f"{tps / bound_tps:.2f}x")
    console.print(table)
    print(
        f"hf engine, {num_requests} concurrent x {new_tokens} tok:  inferq {inferq_tps:.1f} tok/s | "
        f"padded-batch bound {bound_tps:.1f} tok/s | {inferq_tps / bound_tps:.2f}x | "
        f"serial {serial_tps:.1f} tok/s ({inferq_tps / serial_tps:.1f}x less than inferq)"
    )
    return 0


async def _engine_runs(console, engine, conversations, new_tokens) -> tuple[float, float]:
    # one event loop for every engine call: an engine serves the loop it first ran on
    params = {"temperature": 0, "max_new_tokens": new_tokens}
    await _concurrent(engine, conversations[:2], params)
    with console.status(f"inferq: {len(conversations)} concurrent requests"):
        inferq_tps = await _concurrent(engine, conversations, params)
    with console.status("serial: one request at a time"):
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
