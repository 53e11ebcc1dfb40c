"""Reward service under load: 64 concurrent clients on loopback, dynamic batching and the cache on and off.

Starts `python -m reward serve` as a separate process per variant (on a free loopback port, against the reward
model given with --model or one this script builds: --size micro (hidden 64, 2 layers; default) or tiny (the
tiny preset, hidden 256, 4 layers), random weights, a real sequence-classification checkpoint), drives it with
--clients concurrent asyncio clients each sending POST /v1/score requests back to back, each request one GRPO
group (--items_per_request, default 8: the completions of one prompt, as online_rl sends them), and reports
requests/s, items/s, client-side p50/p99 latency, 5xx and other errors, and the server's own mean forward batch
size and cache hits (GET /metrics).

Variants:
  batched     max_batch_size 64, cache off, unique items        (the dynamic-batching number)
  unbatched   max_batch_size 1,  cache off, unique items        (same load, one forward per item)
  cache-off   max_batch_size 64, cache off, GRPO-like duplicates (a group's 8 samples hold 2 distinct answers)
  cache-on    max_batch_size 64, cache on,  GRPO-like duplicates
The `batched` variant sends --requests requests (default 10,000: the zero-5xx run); the others --compare_requests.
Every variant stops at its request count or after --max_seconds, whichever comes first; loopback only.

    .venv/bin/python benchmarks/reward_service.py                       # micro RM; a few minutes on 2 cores
    .venv/bin/python benchmarks/reward_service.py --size tiny --requests 2000
    .venv/bin/python benchmarks/reward_service.py --model runs/tiny/reward --variants batched unbatched

Measured 2026-11-23 on the shared 2-core CPU box (micro model, 8 items per request, defaults; zero 5xx, zero
errors): batched 70.5 req/s (564 items/s, p50 890 ms, p99 1196 ms, 10,000 requests, mean batch 64.0) vs
unbatched 29.5 req/s (2.39x; 2.62x with --torch_threads 2); cache on 89.8 vs off 69.7 req/s on duplicates (1.29x).
Batched runs full 64-item forwards and is forward-bound: the in-process forward alone gives 266 items/s at batch
1 and 827 at batch 64 (3.1x) on this CPU, the ceiling of the HTTP-level ratio here; a GPU widens it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "batched": {"max_batch_size": 64, "cache_size": 0, "duplicates": False},
    "unbatched": {"max_batch_size": 1, "cache_size": 0, "duplicates": False},
    "cache-off": {"max_batch_size": 64, "cache_size": 0, "duplicates": True},
    "cache-on": {"max_batch_size": 64, "cache_size": 65536, "duplicates": True},
}
PROMPTS = [
    f"Sam has {a} apples and gets {b} more. How many apples does Sam have now?"
    for a in range(10) for b in range(10)
]


MICRO = {  # the test suite's micro size: hidden 64, 2 layers, GQA 4/2
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16,
}  # fmt: skip


def build_reward_model(out: Path, size: str) -> Path:
    """A Qwen2.5-architecture reward model of the tiny preset (hidden 256, 4 layers) or the micro size, random
    weights with a fixed seed, saved with its tokenizer."""
    import torch

    from qwen25.init import init_base_checkpoint
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    corpus = [f"{p} {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}." for p in PROMPTS for a, b in [(1, 2)]]
    overrides = MICRO if size == "micro" else None
    base = init_base_checkpoint(
        out / "base", model_config="tiny", corpus=corpus * 4, tokenizer_vocab_size=512, overrides=overrides
    )
    torch.manual_seed(0)
    model = load_model(base, task="sequence-classification", dtype=torch.float32)
    model.save_pretrained(out / "rm")
    load_tokenizer(base).save_pretrained(out / "rm")
    return out / "rm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model: Path, variant: dict, log: Path, *, max_wait_ms: float, torch_threads: int
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "reward", "serve", "--config", str(ROOT / "configs/reward/serve_tiny.yaml"),
        "--model_path", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        "--max_batch_size", str(variant["max_batch_size"]), "--cache_size", str(variant["cache_size"]),
        "--max_wait_ms", str(max_wait_ms), "--torch_threads", str(torch_threads),
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log: {log}\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise RuntimeError(f"server did not answer /healthz in 180 s; log: {log}")


def make_item(index: int, duplicates: bool) -> dict:
    """Unique items, or GRPO-like groups: 8 samples per prompt (items 8g..8g+7) holding 2 distinct answers."""
    if duplicates:
        prompt, answer = PROMPTS[(index // 8) % len(PROMPTS)], (index * 7 // 3) % 2
        text = f"The answer is \\boxed{{{answer + 10}}}. group {index // 8}"
    else:
        prompt, text = PROMPTS[index % len(PROMPTS)], f"The answer is \\boxed{{{index % 97}}}. sample {index}"
    return {"prompt": [{"role": "user", "content": prompt}], "response": text, "reference": None}


async def drive(
    url: str, *, requests: int, clients: int, items_per_request: int, duplicates: bool, max_seconds: float
) -> dict:
    """`clients` coroutines send requests of `items_per_request` items until `requests` were sent or
    `max_seconds` passed."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    next_index = 0
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def client() -> None:
            nonlocal next_index
            while next_index < requests and time.monotonic() < deadline:
                index, next_index = next_index, next_index + 1
                start = time.perf_counter()
                try:
                    first = index * items_per_request
                    items = [make_item(first + k, duplicates) for k in range(items_per_request)]
                    response = await http.post("/v1/score", json={"items": items})
                    key = str(response.status_code)
                except httpx.HTTPError as err:
                    key = type(err).__name__
                latencies.append(time.perf_counter() - start)
                statuses[key] = statuses.get(key, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        server = (await http.get("/metrics")).json()

    latencies.sort()

    def pct(q: float) -> float:
        return 1e3 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "items_per_s": len(latencies) * items_per_request / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "statuses": statuses,
        "5xx": sum(n for code, n in statuses.items() if code.startswith("5")),
        "errors": sum(n for code, n in statuses.items() if code != "200"),
        "mean_batch": server["batching"]["rm"]["mean_batch_size"],
        "forwards": server["batching"]["rm"]["forwards"],
        "cache_hits": server["cache"]["hits"] + server["cache"]["shared_in_flight"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="reward-model checkpoint; default: build one (--size) in a tmp dir")
    parser.add_argument("--size", choices=["micro", "tiny"], default="micro", help="model built without --model")
    parser.add_argument("--torch_threads", type=int, default=1, help="server's intra-op threads (1: best on 2 cores)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--items_per_request", type=int, default=8, help="items per request (a GRPO group)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests of the `batched` variant")
    parser.add_argument("--compare_requests", type=int, default=2_000, help="requests of every other variant")
    parser.add_argument("--max_seconds", type=float, default=240.0, help="time bound of each variant")
    parser.add_argument("--max_wait_ms", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reward-bench-") as tmp:
        tmp = Path(tmp)
        model = args.model or build_reward_model(tmp, args.size)
        results = {}
        for name in args.variants:
            variant = VARIANTS[name]
            proc, url = start_server(
                model, variant, tmp / f"{name}.log", max_wait_ms=args.max_wait_ms, torch_threads=args.torch_threads
            )
            try:
                n = args.requests if name == "batched" else args.compare_requests
                load = {"clients": args.clients, "items_per_request": args.items_per_request}
                load["duplicates"] = variant["duplicates"]
                asyncio.run(drive(url, requests=min(100, n), max_seconds=30, **load))  # warm-up: forwards, sockets
                results[name] = asyncio.run(drive(url, requests=n, max_seconds=args.max_seconds, **load))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            r = results[name]
            print(f"{name}: {r['requests']} requests in {r['seconds']:.1f} s, statuses {r['statuses']}", flush=True)

    model_name = args.model or args.size
    print(f"\nreward service, {args.clients} concurrent clients, {args.items_per_request} items per request, "
          f"model {model_name}")  # fmt: skip
    print(f"{'variant':<10} {'batch':>5} {'cache':>5} {'requests':>8} {'req/s':>8} {'items/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'5xx':>4} {'errors':>6} {'mean batch':>10} {'cache hits':>10}")  # fmt: skip
    for name, r in results.items():
        v = VARIANTS[name]
        print(f"{name:<10} {v['max_batch_size']:>5} {'on' if v['cache_size'] else 'off':>5} {r['requests']:>8} "
              f"{r['rps']:>8.1f} {r['items_per_s']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['5xx']:>4} "
              f"{r['errors']:>6} {r['mean_batch']:>10.1f} {r['cache_hits']:>10}")  # fmt: skip
    if "batched" in results and "unbatched" in results:
        print(f"batching speed-up: {results['batched']['rps'] / results['unbatched']['rps']:.2f}x (goal >= 3x)")
    if "cache-on" in results and "cache-off" in results:
        print(f"cache speed-up on duplicates: {results['cache-on']['rps'] / results['cache-off']['rps']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
