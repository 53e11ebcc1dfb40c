"""The rollout worker: `python -m online_rl.rollout_worker <rollouts dir> --start B` (started by the GRPO stage with
`rollout_engine: worker`, never by hand).

For each batch b from B on that is not yet on disk, it waits for the policy version max(0, b - max_staleness) in
`weights/`, loads it if it is not the one it holds, samples the batch's prompts (from `schedule.pt`) with the seed
of batch b (online_rl/rollout.py: `batch_seed`, `sample_with_logprobs`) and writes `batches/b<b>.pt` through a
temporary file and a rename, so the trainer never reads half a batch. It exits when the schedule is done or when
its parent trainer is gone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_model as load_weights

from online_rl.rollout import batch_seed, sample_with_logprobs
from qwen25.model import load_model
from stagekit.atomic import staged_file
from stagekit.device import pick_device, pick_dtype


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m online_rl.rollout_worker")
    parser.add_argument("root", type=Path)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args(argv)
    settings = json.loads((args.root / "worker.json").read_text())
    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    schedule = torch.load(args.root / "schedule.pt", weights_only=True)["prompt_ids"]
    device = pick_device(settings.get("device") or "auto")
    model = load_model(settings["model_name_or_path"], dca=settings.get("dca"),
                       dtype=pick_dtype("auto", device, settings["model_name_or_path"])).to(device).eval()  # fmt: skip
    held = None
    k = int(settings["max_staleness"])
    batches = args.root / "batches"
    batches.mkdir(parents=True, exist_ok=True)
    print(f"[rollout_worker] pid {os.getpid()}: batches {args.start}..{len(schedule) - 1}, max_staleness {k}",
          flush=True)  # fmt: skip
    for b in range(args.start, len(schedule)):
        out = batches / f"b{b:08d}.pt"
        if out.exists():
            continue
        version = max(0, b - k)
        weights = args.root / "weights" / f"v{version:08d}.safetensors"
        while not weights.exists():
            if os.getppid() != settings["parent_pid"]:
                print("[rollout_worker] the trainer is gone: exiting", flush=True)
                return
            time.sleep(0.01)
        if held != version:
            load_weights(model, str(weights), strict=True, device=str(device))
            held = version
        started = time.perf_counter()
        completions, logprobs = sample_with_logprobs(
            model, schedule[b], pad_token_id=settings["pad_token_id"], eos_token_ids=settings["eos_token_ids"],
            max_new_tokens=settings["max_new_tokens"], temperature=settings["temperature"],
            top_k=settings["top_k"], top_p=settings["top_p"], seed=batch_seed(settings["seed"], b),
        )  # fmt: skip
        with staged_file(out) as tmp:
            torch.save({"batch": b, "version": version, "prompt_ids": schedule[b], "completion_ids": completions,
                        "logprobs": logprobs, "seconds": time.perf_counter() - started}, tmp)  # fmt: skip
        print(f"[rollout_worker] batch {b} from version {version} in {time.perf_counter() - started:.2f} s",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
