"""Asynchronous GRPO: steps/s of the rollout worker at max_staleness 0 (synchronous: the trainer waits for each batch)
vs. 1 (one-step-off: batch b + 1 is generated while the trainer updates on batch b), on the tiny default, in one run.

Each variant is the real stage (`python -m online_rl --config configs/grpo/tiny.yaml`) as its own process with
`rollout_engine: worker`, one torch thread in the trainer and one in the worker (OMP_NUM_THREADS=1,
rollout_worker_threads 1), scored by the reward service of configs/reward/serve_tiny.yaml started here on a free
loopback port. With `--inline` the inline engine (the trainer generates itself, one thread) is run too, as today's
synchronous stage. Reported per variant: steps/s over the training run (TRL's train_runtime; the worker's start is
inside it for both), the mean time the trainer waited for a rollout (rollouts.jsonl), the held-out greedy verifier
reward before and after (the stage's held-out callback on runs/tiny/data/heldout) and the peak RSS of the trainer
and of the worker; then the ratio staleness-1 / staleness-0.

    .venv/bin/python benchmarks/grpo_async.py [--steps 8] [--inline] [--padding_free]
    (needs `make demo`'s runs/tiny: dpo, data, reward; run it alone on the machine)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the reward service exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the reward service at {url} did not come up in {timeout} s")


def peak_rss_mib(pid: int, stop: threading.Event, out: dict) -> None:
    """Polls VmHWM of `pid` and of its children (the worker) until `stop`."""
    while not stop.is_set():
        try:
            children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
            for name, p in [("trainer", pid)] + [("worker", int(c)) for c in children]:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmHWM"):
                        out[name] = max(out.get(name, 0.0), int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
        stop.wait(0.5)


def run(name: str, url: str, work: Path, steps: int, *extra: str) -> dict:
    out = work / name
    argv = [sys.executable, "-m", "online_rl", "--config", "configs/grpo/tiny.yaml", "--output_dir", str(out),
            "--reward_url", url, "--max_steps", str(steps), "--heldout_eval_steps", str(steps),
            "--heldout_samples", "0", "--save_strategy", "no", "--report_to", "none", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled"}
    log = open(work / f"{name}.log", "w")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    rss: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=peak_rss_mib, args=(proc.pid, stop, rss), daemon=True)
    watcher.start()
    code = proc.wait()
    stop.set()
    if code != 0:
        raise SystemExit(f"{name} failed ({code}); see {work / f'{name}.log'}")
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "rollouts" / "rollouts.jsonl").read_text().splitlines()]
    return {
        "variant": name, "steps": summary["steps"], "runtime_s": summary["runtime_s"],
        "steps_per_s": summary["steps"] / summary["runtime_s"],
        "mean_wait_s": sum(r["wait_s"] for r in rows) / len(rows),
        "max_staleness_seen": max(r["staleness"] for r in rows),
        "heldout_verifier_first": summary.get("heldout_verifier_first"),
        "heldout_verifier_last": summary.get("heldout_verifier_last"),
        "heldout_accuracy_last": summary.get("heldout_accuracy_last"),
        "last_reward": summary.get("last_reward"),
        "peak_rss_trainer_mib": round(rss.get("trainer", 0.0)), "peak_rss_worker_mib": round(rss.get("worker", 0.0)),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--inline", action="store_true", help="also run the inline engine (trainer generates)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--padding_free", action="store_true", help="every variant with padding_free: true")
    args = parser.parse_args()
    for need in ("runs/tiny/dpo", "runs/tiny/data/rl_queries_scored", "runs/tiny/reward"):
        if not (ROOT / need).exists():
            raise SystemExit(f"{need} is missing: run `make demo` first")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    service = subprocess.Popen([sys.executable, "-m", "reward", "serve", "--config", "configs/reward/serve_tiny.yaml",
                                "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    results = []
    try:
        wait_ready(url, service)
        with tempfile.TemporaryDirectory(prefix="grpo_async_") as tmp:
            work = Path(tmp)
            worker = ("--rollout_engine", "worker", "--rollout_worker_threads", "1")
            if args.padding_free:
                worker += ("--padding_free", "true")
            if args.inline:
                results.append(run("inline", url, work, args.steps, "--rollout_engine", "inline",
                                   *(("--padding_free", "true") if args.padding_free else ())))
            results.append(run("staleness0", url, work, args.steps, *worker, "--max_staleness", "0"))
            results.append(run("staleness1", url, work, args.steps, *worker, "--max_staleness", "1"))
    finally:
        service.terminate()
        service.wait()
    for r in results:
        print(json.dumps(r))
    by = {r["variant"]: r for r in results}
    ratio = by["staleness1"]["steps_per_s"] / by["staleness0"]["steps_per_s"]
    print(f"steps/s staleness1 / staleness0 = {ratio:.2f}x")
    if "inline" in by:
        print(f"steps/s staleness1 / inline = {by['staleness1']['steps_per_s'] / by['inline']['steps_per_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratio_staleness1_over_0": ratio}, indent=2))


if __name__ == "__main__":
    main()
