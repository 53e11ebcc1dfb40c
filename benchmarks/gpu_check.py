"""The GPU acceptance check (`make gpu-check`): what only a CUDA device can show, in one command, as JSON + markdown.

Sections, each a subprocess with its own time limit, in this order (the most informative first, so a check cut
short still reports them):
  gpu_tests    the `gpu` test tier: the Triton varlen kernel against the fp32 reference at full size in bf16 and
               fp16 (head_dim 64/128, the real models' GQA ratios, packed and decode rows) and the fused
               cross-entropy at vocabulary 151,936 (tests/qwen25/test_attention_triton.py, test_fused_linear_ce.py);
  attention    benchmarks/attention.py: the kernel against PyTorch SDPA (flash backend) at 4K/16K/32K packed
               tokens, GQA 28/4, head_dim 128, forward and forward+backward, TFLOP/s;
  sft_step     benchmarks/sft_step_cuda.py: one 32,768-token packed SFT step of the full 24-layer Qwen2.5-0.5B
               architecture (random init, bf16), ours vs plain transformers: peak memory, tokens/s, loss;
  generation   benchmarks/generation_cuda.py: a GRPO-sized rollout (8 queries x 8 responses) with the KV cache,
               ours vs transformers SDPA, tokens/s;
  grpo_step, tiny_pipeline
               the GRPO stage and `make demo` on the GPU: they need TRL, datasets, DeepSpeed and the reward
               service's packages; where those are not installed (the bare GPU image) the section says which are
               missing and is not run.
Writes `<out>/gpu_check.json` (every section's status, seconds and parsed figures) and `<out>/gpu_check.md` (the
tables), plus each section's log. Runs on the machine's preinstalled torch (`PYTHON=python3`) or in our venv;
needs only torch, triton, transformers and pytest for the first four sections. Never part of CI.

    make gpu-check                                   # .venv/bin/python if it exists, else python3; runs/gpu_check
    python3 benchmarks/gpu_check.py --out /tmp/gc --only sft_step attention
    python3 benchmarks/gpu_check.py --dry_run        # lists the commands; works without a GPU
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GPU_TEST_FILES = ["tests/qwen25/test_attention_triton.py", "tests/qwen25/test_fused_linear_ce.py"]
STAGE_PACKAGES = ["trl", "datasets", "deepspeed", "fastapi", "uvicorn", "math_verify"]
BUDGET_S = 480  # issue 17: at most 8 minutes on one H100/H200


def section_commands(py: str, out: Path, xdist: bool) -> dict[str, tuple[list[str], int]]:
    """name -> (command, time limit in seconds)."""
    pytest_cmd = [py, "-m", "pytest", "--noconftest", "-p", "no:cacheprovider", "-q", "-m", "gpu",
                  f"--junitxml={out / 'gpu_tests.xml'}", *GPU_TEST_FILES]  # fmt: skip
    if xdist:  # 16 cores compile the autotuner's variants in parallel (Triton's disk cache is shared)
        pytest_cmd[3:3] = ["-n", "8"]
    return {
        "gpu_tests": (pytest_cmd, 180),
        "attention": ([py, "benchmarks/attention.py", "--tokens", "4096", "16384", "32768", "--warmup", "10",
                       "--rep", "40"], 140),  # fmt: skip
        "sft_step": ([py, "benchmarks/sft_step_cuda.py", "--tokens", "32768", "--json", str(out / "sft_step.json")],
                     120),  # fmt: skip
        "generation": ([py, "benchmarks/generation_cuda.py", "--json", str(out / "generation.json")], 80),
    }


def environment(py: str) -> dict:
    probe = ("import json, torch, triton, transformers; print(json.dumps({'torch': torch.__version__, "
             "'triton': triton.__version__, 'transformers': transformers.__version__, "
             "'cuda': torch.cuda.is_available(), 'device': torch.cuda.get_device_name() "
             "if torch.cuda.is_available() else None, 'capability': torch.cuda.get_device_capability() "
             "if torch.cuda.is_available() else None}))")  # fmt: skip
    done = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=REPO, check=False)
    env = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}
    env["python"] = platform.python_version()
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False) if _which("nvidia-smi") else None  # fmt: skip
    env["nvidia_smi"] = smi.stdout.strip() if smi and smi.returncode == 0 else None
    return env


def _which(name: str) -> bool:
    return any(Path(d, name).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def parse_junit(path: Path) -> dict:
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_names"] = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return counts


def markdown_tables(text: str) -> list[str]:
    """The markdown table lines a benchmark printed (header, rule, rows), in order."""
    return [line for line in text.splitlines() if line.startswith("|")]


def run_section(name: str, cmd: list[str], limit: int, out: Path, env: dict) -> dict:
    log = out / f"{name}.log"
    print(f"[gpu-check] {name}: {' '.join(cmd)} (limit {limit} s)", flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit, check=False)
        text, rc, status = done.stdout + done.stderr, done.returncode, "ok" if done.returncode == 0 else "failed"
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        text += (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        rc, status = None, f"timed out after {limit} s"
    seconds = time.perf_counter() - start
    log.write_text(text)
    result = {"status": status, "rc": rc, "seconds": round(seconds, 1), "command": " ".join(cmd)}
    tail = [line for line in text.splitlines() if line.strip()][-6:]
    result["tail"] = tail
    if name == "gpu_tests":
        result.update(parse_junit(out / "gpu_tests.xml"))
    else:
        result["table"] = markdown_tables(text)
        summary = out / f"{name}.json"
        if summary.is_file():
            result["summary"] = json.loads(summary.read_text())
        result["verdicts"] = [line for line in text.splitlines()
                              if re.match(r"^(fwd|fwd\+bwd): worst ratio|^ours / transformers", line)]  # fmt: skip
    print(f"[gpu-check] {name}: {status} in {seconds:.0f} s", flush=True)
    return result


def missing_stage_packages(py: str) -> list[str]:
    probe = ("import importlib.util, json; print(json.dumps([n for n in %r if importlib.util.find_spec(n) is None]))"
             % STAGE_PACKAGES)  # fmt: skip
    done = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else STAGE_PACKAGES


def write_report(out: Path, report: dict) -> None:
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    env = report["environment"]
    lines = [f"# make gpu-check, {report['date']}", "",
             f"{env.get('nvidia_smi') or env.get('device')}; Python {env.get('python')}, torch {env.get('torch')}, "
             f"triton {env.get('triton')}, transformers {env.get('transformers')}; total {report['seconds']:.0f} s "
             f"(budget {BUDGET_S} s)", "", "| section | status | seconds |", "|---|---|---|"]  # fmt: skip
    for name, sec in report["sections"].items():
        lines.append(f"| {name} | {sec['status']} | {sec.get('seconds', '-')} |")
    for name, sec in report["sections"].items():
        lines += ["", f"## {name}", ""]
        if name == "gpu_tests" and "tests" in sec:
            lines.append(f"{sec['passed']} passed, {sec['failures'] + sec['errors']} failed, {sec['skipped']} "
                         f"skipped of {sec['tests']}")  # fmt: skip
            lines += [f"- failed: `{n}`" for n in sec["failed_names"]]
        lines += sec.get("table", []) + [""] + sec.get("verdicts", [])
        if sec["status"] != "ok" and sec.get("tail"):
            lines += ["", "```", *sec["tail"], "```"]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_check")
    parser.add_argument("--python", default=sys.executable, help="the interpreter each section runs under")
    parser.add_argument("--only", nargs="+", choices=["gpu_tests", "attention", "sft_step", "generation"])
    parser.add_argument("--dry_run", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    xdist = importlib.util.find_spec("xdist") is not None
    commands = section_commands(args.python, out, xdist)
    if args.only:
        commands = {k: v for k, v in commands.items() if k in args.only}
    if args.dry_run:
        for name, (cmd, limit) in commands.items():
            print(f"{name} (limit {limit} s): {' '.join(cmd)}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    env_info = environment(args.python)
    if not env_info.get("cuda"):
        print(f"gpu-check: no CUDA device here ({env_info}); nothing measured. `--dry_run` lists the commands.")
        return 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}  # fmt: skip
    start = time.perf_counter()
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "environment": env_info, "sections": {}}
    for name, (cmd, limit) in commands.items():
        report["sections"][name] = run_section(name, cmd, limit, out, env)
        report["seconds"] = time.perf_counter() - start
        write_report(out, report)  # after every section: a check cut short keeps what it measured
    missing = missing_stage_packages(args.python)
    for name in ("grpo_step", "tiny_pipeline"):
        if missing:
            report["sections"][name] = {"status": f"not run: {', '.join(missing)} not installed for {args.python}"}
        else:
            report["sections"][name] = {"status": "not run: the stage-level GPU sections are not built yet"}
    report["seconds"] = time.perf_counter() - start
    write_report(out, report)
    print((out / "gpu_check.md").read_text())
    failed = [n for n, s in report["sections"].items() if s["status"] not in ("ok",) and "not run" not in s["status"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
