"""Tool use on the tiny default: multi-digit arithmetic the tiny policy cannot do alone but can with a calculator.

    .venv/bin/python docs/examples/grpo_tool_use.py [--sft_rows 1500] [--sft_steps 600] [--grpo_steps 12]

Needs `make demo`'s runs/tiny/sft (the starting policy) and runs/tiny/reward (the reward service's model). Steps,
each skipped when its output exists (delete runs/tool_use to start over):
1. data (runs/tool_use/data): the tool_calling area's `big_arithmetic` tool (exact integer arithmetic, run in the
   sandbox) as the toolbox; tasks "What is 4821 times 97? I need the exact value." with 2-4 digit operands.
   SFT rows are whole episodes (system turn with the tool, request, `<tool_call>`, the sandbox's result, the
   answer), each call turn and answer turn checked by the `tool_call` verifier. RL and held-out rows are the
   request alone, with a `tool_call` reference at its answer step (the final answer must state the exact value).
2. evaluation of the starting policy with the toolbox (greedy episodes, at most 2 tool rounds): how many episodes
   call the tool, the share of calls that run without an error, the held-out accuracy.
3. SFT from runs/tiny/sft on the tool episodes (`python -m sft`), evaluated the same way.
4. GRPO from that checkpoint (`python -m online_rl`, rollout_engine inline, tools_file: the episodes' tool calls
   run in the sandbox, their results masked out of the loss, the final answer scored by the reward service of
   configs/reward/serve_tiny.yaml, started here on a free port), evaluated the same way.
5. runs/tool_use/results.json and docs/grpo_tool_use_curve.png (GRPO's training reward, tool error share and
   calls per episode per step, from its metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data_builders.builders.tool_calling import TOOLS, call_text, implementation, tools_system_prompt  # noqa: E402
from stagekit.atomic import save_dataset, write_json  # noqa: E402
from verifiers.tool_call import execute_calls, verify_tool_call_many  # noqa: E402

OUT = ROOT / "runs" / "tool_use"
WORDS = {"add": "plus", "subtract": "minus", "multiply": "times"}


def tasks(n: int, seed: int, digits: tuple[int, int]) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        op = rng.choice(list(WORDS))
        a, b = (str(rng.randint(10 ** (d - 1), 10**d - 1)) for d in (rng.randint(*digits), rng.randint(*digits)))
        out.append({"request": f"What is {a} {WORDS[op]} {b}? I need the exact value.",
                    "call": {"name": "big_arithmetic", "arguments": {"operation": op, "a": a, "b": b}}})  # fmt: skip
    return out


def build_data(args) -> None:
    from datasets import Dataset

    data = OUT / "data"
    if (data / "toolbox.json").exists():
        return
    spec, source = TOOLS["big_arithmetic"].spec(), implementation(["big_arithmetic"])
    system = tools_system_prompt([spec])
    all_tasks = tasks(args.sft_rows + args.rl_rows + args.heldout_rows, seed=0,
                      digits=(args.min_digits, args.max_digits))  # fmt: skip
    calls = [t["call"] for t in all_tasks]
    results = [value for i in range(0, len(calls), 200)  # 200 calls per sandbox run (its output is capped)
               for value in execute_calls(source, calls[i : i + 200], timeout_s=30)]  # fmt: skip
    rows = []
    for i, (task, result) in enumerate(zip(all_tasks, results, strict=True)):
        reference = {"type": "tool_call", "tools": [spec], "implementation": source,
                     "steps": [{"calls": [task["call"]]}, {"answer": result}]}  # fmt: skip
        prompt = [{"role": "system", "content": system}, {"role": "user", "content": task["request"]}]
        rows.append({"id": f"tool-{i}", "prompt": prompt, "reference": reference, "result": result})
    sft_rows, rl_rows = rows[: args.sft_rows], rows[args.sft_rows : args.sft_rows + args.rl_rows]
    heldout_rows = rows[args.sft_rows + args.rl_rows :]
    answer = "The answer is {}."
    checks = [(call_text([r["reference"]["steps"][0]["calls"][0]]), {**r["reference"], "step": 0}) for r in sft_rows]
    checks += [(answer.format(r["result"]), {**r["reference"], "step": 1}) for r in sft_rows]
    verdicts = verify_tool_call_many(checks)
    bad = sum(not v.passed for v in verdicts)
    if bad:
        raise SystemExit(f"{bad} of {len(verdicts)} SFT turns fail the tool_call verifier")
    print(f"[tool_use] {len(verdicts)} SFT turns verified ({len(sft_rows)} episodes)", flush=True)
    sft = [{"id": r["id"], "category": "tool_calling", "messages": r["prompt"] + [
        {"role": "assistant", "content": call_text([r["reference"]["steps"][0]["calls"][0]])},
        {"role": "tool", "content": r["result"]},
        {"role": "assistant", "content": answer.format(r["result"])}]} for r in sft_rows]  # fmt: skip
    save_dataset(Dataset.from_list(sft), data / "sft")
    for name, part in (("rl_queries", rl_rows), ("heldout", heldout_rows)):
        save_dataset(Dataset.from_list([{"id": r["id"], "category": "tool_calling", "prompt": r["prompt"],
                                         "reference": json.dumps({**r["reference"], "step": 1})} for r in part]),
                     data / name)  # fmt: skip
    write_json(data / "toolbox.json", {"tools": [spec], "implementation": source})


def evaluate(model_dir: Path, rows: list[dict]) -> dict:
    import torch

    from online_rl.rollout import sample_with_logprobs
    from online_rl.tools import Toolbox, evaluate_episodes
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    model, tok = load_model(model_dir).eval(), load_tokenizer(model_dir)
    toolbox = Toolbox.load(OUT / "data" / "toolbox.json", timeout_s=5.0, max_result_chars=2000)

    def greedy(ids, budget, seed):
        with torch.no_grad():
            return sample_with_logprobs(model, ids, pad_token_id=tok.pad_token_id, eos_token_ids=[tok.eos_token_id],
                                        max_new_tokens=budget, temperature=1.0, seed=seed, greedy=True)  # fmt: skip

    return evaluate_episodes(greedy, tok, toolbox, rows, max_new_tokens=160, max_iterations=2)


def run(argv: list[str], log: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled", "CUDA_VISIBLE_DEVICES": ""}
    with open(log, "w") as f:
        code = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    code = code.returncode
    if code:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({code}); see {log}")


def serve() -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "reward", "serve", "--config", "configs/reward/serve_tiny.yaml",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the reward service did not come up")


def curve(metrics: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = [json.loads(line) for line in metrics.read_text().splitlines()]
    logs = [r for r in logs if "reward" in r]
    steps = [r["step"] for r in logs]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, title in zip(axes, ("reward", "tools/error_frac", "tools/calls_per_episode"),
                              ("training reward", "tool calls with an error", "tool calls per episode"),
                              strict=True):  # fmt: skip
        ax.plot(steps, [r.get(key) for r in logs], marker="o")
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft_rows", type=int, default=1500)
    parser.add_argument("--rl_rows", type=int, default=256)
    parser.add_argument("--heldout_rows", type=int, default=64)
    parser.add_argument("--min_digits", type=int, default=2)
    parser.add_argument("--max_digits", type=int, default=4)
    parser.add_argument("--sft_steps", type=int, default=600)
    parser.add_argument("--sft_learning_rate", type=float, default=1e-3)
    parser.add_argument("--grpo_steps", type=int, default=12)
    parser.add_argument("--grpo_queries", type=int, default=8, help="queries per GRPO step (x 8 episodes)")
    args = parser.parse_args()
    for need in ("runs/tiny/sft", "runs/tiny/reward"):
        if not (ROOT / need).exists():
            raise SystemExit(f"{need} is missing: run `make demo` first")
    OUT.mkdir(parents=True, exist_ok=True)
    build_data(args)
    from datasets import load_from_disk

    heldout = [dict(r, reference=json.loads(r["reference"])) for r in load_from_disk(str(OUT / "data" / "heldout"))]
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    if "start" not in results:
        results["start"] = evaluate(ROOT / "runs/tiny/sft", heldout)
        write_json(results_path, results)
    print("[tool_use] start:", json.dumps({k: v for k, v in results["start"].items() if k != "examples"}), flush=True)

    sft_dir = OUT / "sft"
    if not (sft_dir / "summary.json").exists():
        run(["-m", "sft", "--config", "configs/sft/tiny.yaml", "--model_name_or_path", "runs/tiny/sft",
             "--dataset_path", str(OUT / "data/sft"), "--output_dir", str(sft_dir), "--max_steps",
             str(args.sft_steps), "--learning_rate", str(args.sft_learning_rate), "--report_to", "none",
             "--logging_steps", "20"],
            OUT / "sft.log")  # fmt: skip
    if "sft" not in results:
        results["sft"] = evaluate(sft_dir, heldout)
        write_json(results_path, results)
    print("[tool_use] after SFT:", json.dumps({k: v for k, v in results["sft"].items() if k != "examples"}),
          flush=True)  # fmt: skip

    grpo_dir = OUT / "grpo"
    if not (grpo_dir / "summary.json").exists():
        service, url = serve()
        try:
            run(["-m", "online_rl", "--config", "configs/grpo/tiny.yaml", "--model_name_or_path", str(sft_dir),
                 "--dataset_path", str(OUT / "data/rl_queries"), "--query_order", "dataset",
                 "--heldout_dataset_path", "", "--output_dir", str(grpo_dir), "--reward_url", url,
                 "--rollout_engine", "inline", "--tools_file", str(OUT / "data/toolbox.json"),
                 "--max_tool_calling_iterations", "2", "--max_completion_length", "160",
                 "--per_device_train_batch_size", str(8 * args.grpo_queries), "--max_steps", str(args.grpo_steps),
                 "--save_strategy", "no", "--report_to", "none"], OUT / "grpo.log")  # fmt: skip
        finally:
            service.terminate()
            service.wait()
    if "grpo" not in results:
        results["grpo"] = evaluate(grpo_dir, heldout)
        write_json(results_path, results)
    print("[tool_use] after GRPO:", json.dumps({k: v for k, v in results["grpo"].items() if k != "examples"}),
          flush=True)  # fmt: skip
    curve(grpo_dir / "metrics.jsonl", ROOT / "docs" / "grpo_tool_use_curve.png")


if __name__ == "__main__":
    main()
