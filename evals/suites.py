"""`qwenpost eval --model CKPT --suite NAME`: a checkpoint on a standard benchmark file, greedy, verified.

Suites, each read from a local file in the benchmark's own format (the hubs are out of reach: shared/NOTES.md) by the
data builders' loaders (data_builders/seeds.py), answered by the project's one generation loop
(`qwen25.generation.generate`: batched greedy decoding, progress bar) and scored by the verifiers
(`verifiers.verify_many`):

- `tiny_heldout`: the default's held-out split (`--data`: a `save_to_disk` dir, default runs/tiny/data/heldout);
  rows carry their own `reference`. accuracy and format rate, as the pipeline's table.
- `gsm8k` (`{"question", "answer": "...#### 72"}`) and `math` (`{"problem", "solution": "...\\boxed{..}"}`):
  the question plus Qwen's chain-of-thought instruction ("... put your final answer within \\boxed{}").
  `accuracy`: the final answer is boxed (or "The answer is ...") and equals the reference (math-verify);
  `accuracy_flexible`: the answer equals the reference however it was found (boxed, "answer is", last number),
  lm-eval's flexible extraction. Intermediate arithmetic is not checked (`check_steps: false`).
- `humaneval` (`{"prompt", "test", "entry_point", "canonical_solution"}`, .jsonl or .jsonl.gz) and `mbpp`
  (`{"text", "code", "test_list"}`): pass@1 with greedy decoding; the answer's code plus the tests run in the sandbox.
- `multipl_e` (MultiPL-E's published rows: `{"name", "language", "prompt", "doctests", "original",
  "prompt_terminology", "tests", "stop_tokens"}`, any of the sandbox's 20 languages by MultiPL-E's name: cpp, js,
  ts, sh, rs, ...): pass@1 overall and per language (`pass@1/<language>`). The program is MultiPL-E's: prompt +
  completion (cut at the first stop token) + tests; the chat model is asked to complete the prompt, and its fenced
  answer is taken after the prompt's last line when it repeats the prompt (`verifiers.code.completion_of`).
- `ifeval` (`{"key", "prompt", "instruction_id_list", "kwargs"}`): IFEval's four numbers: prompt-level and
  instruction-level accuracy, strict and loose (loose: also passes with the first/last line or `*` removed).
- `passkey` (evals/passkey.py): long-context retrieval, generated, no file; `--data` gives the prompt lengths in
  tokens, e.g. `1024,4096x5`. `accuracy` and `accuracy@<length>`.

`--dca CHUNK_SIZE,LOCAL_SIZE` evaluates with Dual Chunk Attention (qwen25/attention/dca.py), for prompts longer than
the trained length; `--dca off` disables it on a checkpoint whose config turns it on; without the flag the
checkpoint's config decides.

Writes `<out>/eval_<suite>.json` (aggregate + one row per item: prompt, response, verdicts), prints the aggregate,
and logs it to wandb (offline unless configured; job_type = eval, group = `--experiment`) unless `--report_to none`.
Every stage's checkpoint is a plain HF directory, so after any stage: `qwenpost eval --model runs/tiny/dpo --suite
tiny_heldout`; the pipeline runs the suites named in its `eval_suites` key on every checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, load_from_disk

from data_builders.builders.multipl_e import DISPLAY_NAMES, FENCES, MULTIPL_E_NAMES
from data_builders.config import MATH_INSTRUCTION  # the prompt the math data is built with, so eval matches it
from data_builders.seeds import parse_code, parse_math, read_jsonl
from evals.passkey import PASSKEY_DEFAULT, load_passkey, prepare_passkey, score_passkey
from qwen25.attention.dca import parse_dca
from qwen25.generation import generate
from qwen25.model import load_for_inference
from qwen25.tokenizer import load_tokenizer
from stagekit.atomic import write_json
from stagekit.config import ConfigError
from stagekit.device import DEVICE_HELP, DTYPE_HELP, check_device_dtype, pick_device
from verifiers import verify, verify_many
from verifiers.ifeval import load_ifeval_jsonl


@dataclass(frozen=True)
class Suite:
    name: str
    load: Callable[[Path], list[dict]]  # file -> items {"id", "prompt": chat messages, "reference": verifier spec}
    score: Callable[[list[dict], list[str]], tuple[list[dict], dict]]  # items, answers -> (rows, aggregate)
    max_new_tokens: int  # default generation budget
    default_data: str | None = None
    data_is_file: bool = True  # False: `--data` is a spec the loader parses (passkey lengths)
    prepare: Callable | None = None  # (items, tokenizer) -> items with prompts, once the tokenizer is loaded


def load_heldout(path: Path) -> list[dict]:
    if not path.is_dir():
        raise ConfigError(f"--data: {path} is not a dataset directory (save_to_disk), as tiny_heldout expects")
    ds = load_from_disk(str(path))
    if not isinstance(ds, Dataset) or not {"prompt", "reference"} <= set(ds.column_names):
        raise ConfigError(f"--data: {path} must be one split with 'prompt' and 'reference' columns")
    return [{"id": row.get("id", i), "prompt": row["prompt"], "reference": row["reference"]} for i, row in
            enumerate(ds)]


def load_math(path: Path, style: str) -> list[dict]:
    items = []
    for row in read_jsonl(path):
        seed = parse_math(row)
        if seed.style != style:
            raise ConfigError(f"{row.where}: a {seed.style.upper()}-style row in a {style} suite")
        items.append({
            "id": row.row.get("unique_id", row.ref),
            "prompt": [{"role": "user", "content": f"{seed.question}\n{MATH_INSTRUCTION}"}],
            "reference": {"type": "math", "answer": seed.answer, "check_steps": False},
        })  # fmt: skip
    return items


def load_code(path: Path, style: str) -> list[dict]:
    items = []
    for row in read_jsonl(path):
        seed = parse_code(row)
        if seed.style != style:
            raise ConfigError(f"{row.where}: a {seed.style}-style row in a {style} suite")
        reference = {"type": "code", "language": "python", "tests": seed.tests,
                     "entry_point": seed.entry_point if style == "humaneval" else None}
        items.append({"id": row.row.get("task_id", row.ref), "prompt": [{"role": "user", "content": seed.prompt}],
                      "reference": reference})
    return items


# MultiPL-E's language names (its file extensions; some rows spell the language out) -> the sandbox's
MULTIPL_E_LANGUAGES = {**{name: language for language, name in MULTIPL_E_NAMES.items()},
                       **{language: language for language in MULTIPL_E_NAMES}, "go": "go"}
MULTIPL_E_FIELDS = ("name", "language", "prompt", "tests", "stop_tokens")
MULTIPL_E_TIMEOUT_S = 30.0  # ours: the run step of a slow-starting runtime (Racket, R, a JVM) on a loaded machine


def load_multipl_e(path: Path) -> list[dict]:
    """MultiPL-E rows (its published JSONL / `datasets` format); a row that lacks a field or names a language the
    sandbox has no entry for is refused with its file and line."""
    items = []
    for row in read_jsonl(path):
        missing = [key for key in MULTIPL_E_FIELDS if key not in row.row]
        if missing:
            raise ConfigError(f"{row.where}: a MultiPL-E row needs {list(MULTIPL_E_FIELDS)}; missing {missing}")
        language = MULTIPL_E_LANGUAGES.get(str(row.row["language"]).lower())
        if language is None:
            raise ConfigError(f"{row.where}: MultiPL-E language {row.row['language']!r} is not one the sandbox runs; "
                              f"known: {sorted(MULTIPL_E_LANGUAGES)}")
        if language == "go":
            raise ConfigError(f"{row.where}: MultiPL-E's Go tests are `go test` files (package *_test, a Test "
                              "function); the sandbox runs `package main` programs: not supported")
        prompt, tests, stops = row.text("prompt"), row.text("tests"), row.row["stop_tokens"]
        if not isinstance(stops, list) or not all(isinstance(t, str) and t for t in stops):
            raise ConfigError(f"{row.where}: 'stop_tokens' must be a list of non-empty strings, got {stops!r:.80}")
        fence = FENCES[language]
        ask = (f"Complete the following {DISPLAY_NAMES[language]} code. Reply with the completed code in a "
               f"```{fence} block.\n\n```{fence}\n{prompt.rstrip()}\n```")
        reference = {"type": "code", "language": language, "tests": tests, "entry_point": None, "prompt": prompt,
                     "stop_tokens": stops, "timeout_s": MULTIPL_E_TIMEOUT_S}
        items.append({"id": f"{row.row['name']}:{row.row['language']}", "language": language,
                      "prompt": [{"role": "user", "content": ask}], "reference": reference})
    return items


def score_multipl_e(items: list[dict], answers: list[str]) -> tuple[list[dict], dict]:
    """pass@1 overall and per language (`pass@1/<language>`)."""
    rows, metrics = score_pass_at_1(items, answers)
    for language in sorted({item["language"] for item in items}):
        mine = [row["passed"] for row, item in zip(rows, items, strict=True) if item["language"] == language]
        metrics[f"pass@1/{language}"] = sum(mine) / len(mine)
    return rows, metrics


def load_ifeval(path: Path) -> list[dict]:
    return [{"id": ref["key"], "prompt": [{"role": "user", "content": ref["prompt"]}], "reference": ref}
            for ref in load_ifeval_jsonl(path)]


def _rows(items: list[dict], answers: list[str], **columns: list) -> list[dict]:
    return [
        {"id": item["id"], "prompt": item["prompt"][-1]["content"], "response": answer,
         **{k: v[i] for k, v in columns.items()}}
        for i, (item, answer) in enumerate(zip(items, answers, strict=True))
    ]  # fmt: skip


def score_verified(items: list[dict], answers: list[str]) -> tuple[list[dict], dict]:
    """accuracy (verifier passed) and format rate; for math also the flexible accuracy."""
    results = verify_many(answers, [item["reference"] for item in items])
    n = len(items)
    metrics = {"n": n, "accuracy": sum(r.passed for r in results) / n,
               "format_rate": sum(r.format_ok for r in results) / n}
    if results and results[0].verifier == "math":
        metrics["accuracy_flexible"] = sum(bool(r.details.get("answer_correct")) for r in results) / n
    rows = _rows(items, answers, passed=[r.passed for r in results], details=[r.details for r in results])
    return rows, metrics


def score_pass_at_1(items: list[dict], answers: list[str]) -> tuple[list[dict], dict]:
    """pass@1 of greedy code: the share of answers whose code passes every test in the sandbox."""
    results = verify_many(answers, [item["reference"] for item in items])
    n = len(items)
    metrics = {"n": n, "pass@1": sum(r.passed for r in results) / n,
               "format_rate": sum(r.format_ok for r in results) / n}
    details = [{k: r.details.get(k) for k in ("language", "status", "extraction", "failure")} for r in results]
    return _rows(items, answers, passed=[r.passed for r in results], details=details), metrics


def score_ifeval(items: list[dict], answers: list[str]) -> tuple[list[dict], dict]:
    """IFEval's prompt-level and instruction-level accuracy, strict and loose."""
    verdicts: dict[str, list[list[bool]]] = {"strict": [], "loose": []}
    for item, answer in zip(items, answers, strict=True):
        for mode in verdicts:
            result = verify(answer, {**item["reference"], "mode": mode})
            verdicts[mode].append([c["passed"] for c in result.details["constraints"]])
    metrics: dict = {"n": len(items)}
    for mode, per_prompt in verdicts.items():
        flat = [ok for prompt in per_prompt for ok in prompt]
        metrics[f"prompt_level_{mode}_acc"] = sum(all(p) for p in per_prompt) / len(per_prompt)
        metrics[f"inst_level_{mode}_acc"] = sum(flat) / len(flat)
    rows = _rows(
        items, answers,
        instruction_id_list=[item["reference"]["instruction_id_list"] for item in items],
        follow_instruction_list_strict=verdicts["strict"], follow_instruction_list_loose=verdicts["loose"],
    )  # fmt: skip
    return rows, metrics


SUITES: dict[str, Suite] = {
    "tiny_heldout": Suite("tiny_heldout", load_heldout, score_verified, 64, "runs/tiny/data/heldout"),
    "gsm8k": Suite("gsm8k", lambda p: load_math(p, "gsm8k"), score_verified, 512),
    "math": Suite("math", lambda p: load_math(p, "math"), score_verified, 1024),
    "humaneval": Suite("humaneval", lambda p: load_code(p, "humaneval"), score_pass_at_1, 512),
    "mbpp": Suite("mbpp", lambda p: load_code(p, "mbpp"), score_pass_at_1, 512),
    "multipl_e": Suite("multipl_e", load_multipl_e, score_multipl_e, 512),
    "ifeval": Suite("ifeval", load_ifeval, score_ifeval, 1024),
    "passkey": Suite("passkey", load_passkey, score_passkey, 16, PASSKEY_DEFAULT, False, prepare_passkey),
}


def load_suite(name: str, data: str | os.PathLike | None, limit: int | None = None) -> list[dict]:
    """The suite's items from `data` (or its default); ConfigError names the suite, file and line that is wrong."""
    if name not in SUITES:
        raise ConfigError(f"--suite: unknown suite {name!r}; suites are {list(SUITES)}")
    suite = SUITES[name]
    if data is None and suite.default_data is None:
        raise ConfigError(f"--suite {name} needs --data FILE: the benchmark's local file in its standard format")
    path = Path(data if data is not None else suite.default_data)
    if suite.data_is_file and not path.exists():
        raise ConfigError(f"--data: {path} not found (suite {name})")
    try:
        items = suite.load(path if suite.data_is_file else str(data if data is not None else suite.default_data))
    except ValueError as e:  # the loaders name the file and line
        raise ConfigError(str(e)) from e
    if limit is not None:
        items = items[:limit]
    if not items:
        raise ConfigError(f"--data: {path} holds no items for suite {name}")
    return items


def evaluate_suite(
    model_path: str | os.PathLike,
    suite: str,
    *,
    data: str | os.PathLike | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    out: str | os.PathLike | None = None,
    report_to: str = "wandb",
    experiment: str = "eval",
    dca: dict | bool | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """Generate, score, write `<out>/eval_<suite>.json`, log to wandb; returns the file's content.

    dca: Dual Chunk Attention for the model (`qwen25.model.load_model`'s argument; `parse_dca` reads the flag).
    """
    if not (Path(model_path) / "config.json").is_file():
        raise ConfigError(f"--model: {model_path} is not an HF checkpoint directory (no config.json)")
    items = load_suite(suite, data, limit)
    spec = SUITES[suite]
    max_new_tokens = max_new_tokens or spec.max_new_tokens
    if isinstance(dca, str):
        dca = parse_dca(dca, key="--dca")
    t0 = time.monotonic()
    try:
        model = load_for_inference(model_path, device=device, dtype=dtype, dca=dca)
    except ConfigError:  # a device or dtype that is not available here: already names the key
        raise
    except ValueError as e:  # a DCA block that does not fit this checkpoint
        raise ConfigError(f"--dca: {e}") from e
    tokenizer = load_tokenizer(model_path)
    if spec.prepare is not None:
        items = spec.prepare(items, tokenizer)
    answers = generate(model, tokenizer, [item["prompt"] for item in items], max_new_tokens=max_new_tokens,
                               batch_size=batch_size, desc=f"eval {suite}")
    rows, metrics = spec.score(items, answers)
    result = {
        "suite": suite,
        "model": str(model_path),
        "data": str(data if data is not None else spec.default_data),
        "settings": {"limit": limit, "batch_size": batch_size, "max_new_tokens": max_new_tokens, "decoding": "greedy",
                     "dca": getattr(model.config, "dual_chunk_attention_config", None)},
        "metrics": metrics,
        "wall_time_s": round(time.monotonic() - t0, 2),
        "rows": rows,
    }
    out_dir = Path(out) if out is not None else Path(model_path)
    path = write_json(out_dir / f"eval_{suite}.json", result)
    result["path"] = str(path)
    if report_to == "wandb":
        result["wandb"] = _log_wandb(result, experiment, out_dir)
    return result


def _log_wandb(result: dict, experiment: str, out_dir: Path) -> dict:
    """One wandb run (job_type eval) with the aggregate and a table of the first 200 rows; returns where it went."""
    import wandb

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "qwenpost"), group=experiment, job_type="eval",
        name=f"eval-{result['suite']}-{Path(result['model']).name}", dir=str(out_dir),
        config={"suite": result["suite"], "model": result["model"], "data": result["data"], **result["settings"]},
    )  # fmt: skip
    metrics = {f"eval/{result['suite']}/{k}": v for k, v in result["metrics"].items()}
    run.log(metrics)
    run.summary.update(metrics)
    columns = ["id", "prompt", "response", "passed"]
    table = wandb.Table(columns=columns, data=[[str(r.get(c)) for c in columns] for r in result["rows"][:200]])
    run.log({f"eval/{result['suite']}/samples": table})
    where = {"id": run.id, "group": run.group, "job_type": run.job_type, "name": run.name, "dir": run.dir}
    run.finish()
    return where


def summary_line(result: dict) -> str:
    metrics = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result["metrics"].items())
    return f"[eval] {result['suite']} on {result['model']}: {metrics} ({result['wall_time_s']:.0f} s)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwenpost eval", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="HF checkpoint directory (any stage's output_dir)")
    parser.add_argument("--suite", required=True, choices=list(SUITES))
    parser.add_argument("--data", default=None,
                        help="the benchmark's local file (tiny_heldout: a dataset dir; passkey: lengths, 1024,4096x5)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items")
    parser.add_argument("--batch_size", type=int, default=16, help="prompts per generate call")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="default: per suite (64 to 1024)")
    parser.add_argument("--out", default=None, help="directory of eval_<suite>.json (default: the checkpoint's)")
    parser.add_argument("--report_to", default="wandb", choices=["wandb", "none"])
    parser.add_argument("--experiment", default="eval", help="wandb group")
    parser.add_argument("--dca", default=None, help="Dual Chunk Attention: CHUNK_SIZE,LOCAL_SIZE (e.g. 32768,1024) "
                        "or off; default: as the checkpoint's config says")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--dtype", default="auto", help=DTYPE_HELP)
    args = parser.parse_args(argv)
    try:
        dca = parse_dca(args.dca, key="--dca")
        check_device_dtype(args.device, args.dtype, where="eval")
        pick_device(args.device)  # a device that is not here is refused before any data or weights load
        for key in ("limit", "batch_size", "max_new_tokens"):
            value = getattr(args, key)
            if value is not None and value < 1:
                raise ConfigError(f"--{key} must be >= 1, got {value}")
        result = evaluate_suite(
            args.model, args.suite, data=args.data, limit=args.limit, batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens, out=args.out, report_to=args.report_to, experiment=args.experiment,
            dca=dca, device=args.device, dtype=args.dtype,
        )  # fmt: skip
    except ConfigError as e:
        print(f"eval: {e}", file=sys.stderr)
        return 2
    print(summary_line(result))
    print(f"[eval] per-item results: {result['path']}")
    if "wandb" in result:
        w = result["wandb"]
        print(f"[eval] wandb run {w['name']} (group {w['group']}, job_type {w['job_type']}): {w['dir']}")
    return 0
