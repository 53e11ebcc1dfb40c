"""GRPO rollout speed: our stage's trainer vs. plain TRL, same tiny model, one process, one run.

  ours   GRPOTrainer on `qwen25.model.load_model` (our attention, generation and training) with the stage's
         reward function `online_rl.rewards.ServiceReward`: every generation batch scored over HTTP by the real
         reward-service app (verifier component; served by uvicorn in a thread of this process, loopback)
  plain  GRPOTrainer on `AutoModelForCausalLM.from_pretrained(..., attn_implementation="sdpa")` with a local
         Python reward function calling the same verifier in-process
  ours_attention  our model (as ours) with plain's local reward function: splits ours/plain into the
         attention's share and the reward service's (HTTP, JSON, the service's batching) share

Both: the same checkpoint, queries (tiny arithmetic), num_generations 8, 8 queries per step, the tiny config's
max_completion_length and temperature, seed 0; --warmup steps are run and not timed, then --steps steps are
timed. Reported per variant: mean step time (generation + reward + loss + optimizer step), generated tokens/s
(completion tokens of a step / its time) and peak RSS of the process so far; and the ratios ours/plain and
ours_attention/plain.

    .venv/bin/python benchmarks/grpo_rollout.py                          # runs/tiny/dpo if it exists, else a
    .venv/bin/python benchmarks/grpo_rollout.py --model runs/tiny/dpo    # random-init tiny preset
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def queries(n: int):
    from datasets import Dataset

    rows = [
        {"id": f"q{a}-{b}", "prompt": [{"role": "user", "content": f"Sam has {a} apples and gets {b} more. "
                                        "How many apples does Sam have now?"}],
         "reference": json.dumps({"type": "math", "answer": str(a + b)})}
        for a in range(1, 10) for b in range(1, 10)
    ]  # fmt: skip
    return Dataset.from_list(rows[:n])


def serve_in_thread():
    """The real reward-service app (verifiers only) on a loopback port; returns (url, server)."""
    import socket

    import uvicorn

    from reward.app import create_app
    from reward.config import ServeConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(weights={"rm": 0.0, "verifier": 1.0}, cache_size=0, verifier_workers=2), None)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server


def local_verifier_reward(completions, reference, **kwargs):
    from reward.client import completion_text
    from verifiers import verify

    return [verify(completion_text(c), json.loads(r)).score for c, r in zip(completions, reference, strict=True)]


def run_variant(name: str, model_dir: Path, args, url: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from online_rl.rewards import ServiceReward
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"
    if name == "plain":
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", dtype=torch.float32)
    else:
        model = load_model(model_dir)
    # ours_attention: our attention alone, plain's local reward; splits ours/plain into attention and service
    reward = local_verifier_reward
    if name == "ours":
        reward = ServiceReward([url], timeout=60, retries=2, num_generations=8)
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(
            output_dir=out, num_generations=8, per_device_train_batch_size=64,
            max_completion_length=args.max_completion_length, temperature=1.0, learning_rate=1e-5, beta=0.0,
            max_steps=total, logging_steps=1, report_to="none",
            save_strategy="no", bf16=False, seed=0, shuffle_dataset=False,
        )  # fmt: skip
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=cfg, train_dataset=queries(8 * total),
                              processing_class=tokenizer, callbacks=[StepTimer()])  # fmt: skip
        trainer.train()
    lengths = [log["completions/mean_length"] for log in trainer.state.log_history if "completions/mean_length" in log]
    timed, timed_lengths = times[args.warmup :], lengths[args.warmup :]
    tokens = [64 * n for n in timed_lengths]  # 64 completions per step
    return {
        "variant": name,
        "step_s": sum(timed) / len(timed),
        "gen_tokens_per_s": sum(tokens) / sum(timed),
        "mean_completion_len": sum(timed_lengths) / len(timed_lengths),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint dir (default: runs/tiny/dpo, else random tiny)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    parser.add_argument("--max_completion_length", type=int, default=48, help="as configs/grpo/tiny.yaml")
    args = parser.parse_args()

    import os

    os.environ.setdefault("WANDB_MODE", "disabled")
    model_dir = Path(args.model) if args.model else ROOT / "runs" / "tiny" / "dpo"
    tmp = None
    if not (model_dir / "config.json").is_file():
        from qwen25.init import init_base_checkpoint

        tmp = tempfile.TemporaryDirectory()
        corpus = [f"Sam has {a} apples and gets {b} more, so {a} + {b} = {a + b}." for a in range(10)
                  for b in range(10)]
        model_dir = init_base_checkpoint(Path(tmp.name) / "tiny", model_config="tiny", corpus=corpus, seed=0)
        print(f"no --model: random-init tiny preset at {model_dir}", flush=True)
    url, server = serve_in_thread()
    results = [run_variant(name, model_dir, args, url) for name in ("plain", "ours_attention", "ours")]
    server.should_exit = True
    for r in results:
        print(
            f"{r['variant']:14s}  step {r['step_s']:.2f} s  generated {r['gen_tokens_per_s']:.0f} tokens/s  "
            f"(mean completion {r['mean_completion_len']:.1f} tokens)  peak RSS {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    plain, attention, ours = results
    for label, r in (("ours/plain", ours), ("ours_attention/plain", attention)):
        print(
            f"{label}: step time {r['step_s'] / plain['step_s']:.2f}x, "
            f"generated tokens/s {r['gen_tokens_per_s'] / plain['gen_tokens_per_s']:.2f}x  (model {model_dir})"
        )
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
