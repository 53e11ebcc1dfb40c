"""Generation overlapping verification: the scaled engine against a local OpenAI-compatible server that answers
after a set latency, with every candidate run in the sandbox.

    python benchmarks/data_engine_overlap.py [--queries 128] [--chunk 32] [--k 4] [--latency 2.5]

The code area's procedural tasks (Python) are the queries. A local chat-completions server (a thread per request,
no CPU while it waits) sleeps `--latency` seconds, then answers each request with candidates drawn from the task's
own pool (a correct solution and realistic flawed ones), so verification does real sandbox work. Four timings of the
same chunks, in one process:
- generation alone (the HTTP generator, chunk after chunk);
- verification alone (the same candidates, cached, through the same prepare/finish path);
- sequential: generate a chunk, then verify it (the in-memory builder's loop);
- overlapped: the engine's `run_unit`, generating up to `prefetch` chunks ahead while it verifies.
The ratio to watch is overlapped / max(generation, verification): 1.0 is perfect overlap, and the sequential loop
sits near (generation + verification) / max.
"""

import argparse
import json
import random
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from data_builders.builders import area_module
from data_builders.builders.sampling import AreaStats, finish_batch, prepare_batch
from data_builders.config import DataConfig, parse_engine
from data_builders.engine import WorkDir, plan_units, run_unit, unit_jobs
from data_builders.generators import Candidate, OpenAIGenerator

ZERO = {f"{split}_size": 0 for split in ("sft", "preference", "preference_eval", "rl_queries", "heldout")}


def serve(pools: dict[str, list[str]], latency: float) -> tuple[ThreadingHTTPServer, str]:
    """A chat-completions server: after `latency` s, n texts from the prompt's pool (seeded by the prompt)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            pool = pools[prompt]
            rng = random.Random(prompt)
            texts = [rng.choice(pool) for _ in range(body["n"])]
            time.sleep(latency)
            payload = json.dumps({"choices": [{"index": i, "message": {"role": "assistant", "content": t}}
                                              for i, t in enumerate(texts)],
                                  "usage": {"completion_tokens": sum(len(t.split()) for t in texts)}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


class Cached:
    """The candidates generation produced, handed back instantly: verification timed alone."""

    name = "cached"

    def __init__(self, answers: dict[str, list[list[Candidate]]]) -> None:
        self.answers = answers

    def generate(self, queries, k):
        return [self.answers[q.messages[-1]["content"]] for q in queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=128, help="at most 128: the Python task families")
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--latency", type=float, default=2.5, help="seconds the server waits before each answer")
    parser.add_argument("--prefetch", type=int, default=2)
    args = parser.parse_args()
    config = DataConfig(output_dir="unused", **ZERO, areas={"code": {
        "procedural": args.queries, "k": args.k, "languages": ["python"], "splits": {"sft": 0.7, "preference": 0.3}}})
    engine = parse_engine({"chunk": args.chunk, "prefetch": args.prefetch, "unit_queries": args.queries})
    (unit,) = plan_units(config, engine)
    jobs, _, _, _ = unit_jobs(config, unit, None)
    pools = {q.messages[-1]["content"]: [c.text for c in q.offline] for _, q in jobs}
    server, url = serve(pools, args.latency)
    generator = OpenAIGenerator(url, "stub", concurrency=256, timeout_s=120)
    verify = area_module("code").batch_verifier(config.area_configs()["code"])
    chunks = [jobs[i : i + args.chunk] for i in range(0, len(jobs), args.chunk)]
    try:
        start = time.perf_counter()
        answers = {}
        for chunk in chunks:
            queries = [q for _, q in chunk]
            for query, candidates in zip(queries, generator.generate(queries, args.k), strict=True):
                answers[query.messages[-1]["content"]] = candidates
        generation = time.perf_counter() - start

        start = time.perf_counter()
        for chunk in chunks:
            finish_batch(prepare_batch(chunk, Cached(answers), verify, args.k), AreaStats(), verify)
        verification = time.perf_counter() - start

        start = time.perf_counter()
        for chunk in chunks:
            finish_batch(prepare_batch(chunk, generator, verify, args.k), AreaStats(), verify)
        sequential = time.perf_counter() - start

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_unit(config, engine, unit, WorkDir(Path(tmp)), generator)
            overlapped = time.perf_counter() - start
    finally:
        server.shutdown()
    best = max(generation, verification)
    print(f"{len(jobs)} code queries x {args.k} candidates in {len(chunks)} chunks of {args.chunk}; server latency "
          f"{args.latency} s; prefetch {args.prefetch}")
    print("| path | seconds | vs max(generation, verification) |")
    print("|---|---:|---:|")
    for name, seconds in (("generation alone", generation), ("verification alone (sandbox)", verification),
                          ("sequential: generate, then verify", sequential), ("overlapped (engine)", overlapped)):
        print(f"| {name} | {seconds:.1f} | {seconds / best:.2f}x |")
    print(f"overlapped / max = {overlapped / best:.2f}; sequential / overlapped = {sequential / overlapped:.2f}x; "
          f"(generation + verification) / overlapped = {(generation + verification) / overlapped:.2f}x")


if __name__ == "__main__":
    main()
