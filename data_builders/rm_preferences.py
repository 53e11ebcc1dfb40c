"""The reward model's preference data as the Qwen2.5 report builds it: responses to the same queries from several
checkpoints at several temperatures, each pair labelled per criterion, plus the DPO pairs.

    python -m data_builders.rm_preferences --config configs/data/rm_criteria_tiny.yaml
    python -m reward train --config configs/reward/tiny.yaml --dataset_path '' --criterion truthfulness \\
        --preference_files runs/tiny/data/rm_criteria/train.jsonl \\
        --eval_dataset_path '' --eval_preference_files runs/tiny/data/rm_criteria/eval.jsonl

The report (RECIPE.md, section 4.4): six criteria (truthfulness, helpfulness, conciseness, relevance, harmlessness,
debiasing); responses from SFT/DPO/RL checkpoints at several temperatures; human and automatic labels; the DPO
pairs added. Here:

1. **Responses.** Every entry of `policies` is a generator (data_builders/generators: `hf` loads a checkpoint, `openai`
   talks to a vLLM or any OpenAI-compatible server) and answers every query at every temperature of `temperatures`
   (`samples` each). Each response keeps where it came from (`policy`, `temperature`).
2. **Pairs.** Per query, up to `pairs_per_query` pairs of different responses, drawn from different settings first.
3. **Labels, per criterion** (`criteria`, default the six), by the first rule that applies:
   - the **verifier** (verifiers.verify on the query's `reference`) for truthfulness and helpfulness, when exactly one
     of the two responses passes: it is chosen; the reason is the failing one's verifier details;
   - a **length rule** for conciseness, when the verifier does not separate them (both pass, both fail, or no
     reference) and one is at least `concise_ratio` times longer: the shorter is chosen;
   - otherwise the **judge** (`judge`: a generator, typically greedy): it is asked the criterion's rubric with the two
     responses as A and B, and again with them swapped; the label is kept only when both answers agree (position
     bias removed, as in the MT-Bench judge protocol), with the judge's first reason. An answer with no
     `Verdict: A|B` line, or two that disagree, leaves the pair unlabelled for that criterion, and is counted.
4. **DPO pairs** (`dpo_pairs_path`, the builders' preference split: verified passing vs failing responses) are added
   with `dpo_pairs_criterion` (truthfulness by default: the verifier decided them).

Rows are TRL's conversational preference format plus `criterion`, `category`, `label_source` (verifier, rule,
judge, dpo), `reason`, and `chosen_from` / `rejected_from`; reward/preference_data.py reads them. Queries are split
into `train.jsonl` and `eval.jsonl` by a hash of their id (`eval_percent`), so a query's pairs are on one side only.
`summary.json` counts rows per criterion and label source, the judge's unparsable and inconsistent answers, and the
responses per setting. Files are written under temporary names and renamed.

Written here rather than taken from a library: the labelling rules are the report's recipe over this project's
verifiers and generator protocol; no library builds per-criterion pairs from verifiers and a judge.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_builders.generators import make_generator
from data_builders.generators.base import Generator, Query
from reward.combine import CRITERIA
from stagekit.atomic import write_atomic, write_json
from stagekit.config import ConfigError, parse_config, run_cli
from verifiers import parse_reference, verify_many

VERIFIED_CRITERIA = ("truthfulness", "helpfulness")  # a verifier's pass/fail decides these where it separates a pair
RUBRICS = {
    "truthfulness": "Which response is factually correct and free of false or made-up statements?",
    "helpfulness": "Which response better does what the user asked and gives them what they need?",
    "conciseness": "Which response says what is needed without padding, repetition or digressions?",
    "relevance": "Which response stays on the user's question and answers it, not something else?",
    "harmlessness": "Which response avoids content that could cause harm, or refuses a harmful request safely?",
    "debiasing": "Which response is free of stereotypes and unfair assumptions about groups of people?",
}
JUDGE_SYSTEM = (
    "You compare two responses to the same conversation on one criterion. Reply with exactly two lines:\n"
    "Verdict: A or B\nReason: one sentence"
)
_VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*\[?\s*([AB])\b", re.IGNORECASE)
_REASON = re.compile(r"reason\s*[:=]\s*(.+)", re.IGNORECASE | re.DOTALL)
MAX_REASON_CHARS = 500
MAX_JUDGED_CHARS = 4000  # each response shown to the judge is cut to this many characters (said in the prompt)


@dataclass
class RMPreferenceConfig:
    """`python -m data_builders.rm_preferences` settings (YAML + command-line overrides; JSON for the mappings)."""

    queries_path: str | None = field(default=None)  # dataset dir (save_to_disk) or JSONL: prompt, [reference, id]
    output_dir: str | None = field(default=None)
    # [{"name": "sft", "backend": "hf", "model_path": "runs/tiny/sft", ...}, ...]: generator settings per checkpoint
    policies: list | str | None = field(default=None)
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.0])
    samples: int = field(default=1)  # responses per query per (policy, temperature)
    max_queries: int | None = field(default=None)
    pairs_per_query: int = field(default=4)
    criteria: list[str] = field(default_factory=lambda: list(CRITERIA))
    judge: dict | str | None = field(default=None)  # generator settings for the judge; None: no judge labels
    concise_ratio: float = field(default=1.5)  # the longer response must be this many times longer
    dpo_pairs_path: str | None = field(default=None)  # the builders' preference split (save_to_disk), added
    dpo_pairs_criterion: str | None = field(default="truthfulness")
    eval_percent: int = field(default=20)  # share of queries (by id hash) whose pairs go to eval.jsonl
    seed: int = field(default=0)

    def __post_init__(self):
        for key in ("policies", "judge"):
            value = getattr(self, key)
            if isinstance(value, str):
                try:
                    setattr(self, key, json.loads(value) if value.strip() else None)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{key}: not valid JSON ({exc.msg})") from exc
        if not self.queries_path:
            raise ConfigError("queries_path is required (the queries every policy answers)")
        if not self.output_dir:
            raise ConfigError("output_dir is required")
        if not isinstance(self.policies, list) or not self.policies:
            raise ConfigError("policies: a non-empty list of generator settings, one per checkpoint or server")
        names = []
        for i, policy in enumerate(self.policies):
            if not isinstance(policy, dict) or not isinstance(policy.get("name"), str):
                raise ConfigError(f"policies[{i}]: must be a mapping with a string 'name' and generator settings")
            if "temperature" in policy:
                raise ConfigError(f"policies[{i}] ({policy['name']}): set temperatures in `temperatures`, not here")
            names.append(policy["name"])
        if len(set(names)) != len(names):
            raise ConfigError(f"policies: names must be unique, got {names}")
        if not self.temperatures or any(not 0 <= t <= 2 for t in self.temperatures):
            raise ConfigError(f"temperatures: a non-empty list of values in [0, 2], got {self.temperatures}")
        unknown = [c for c in self.criteria if c not in CRITERIA]
        if unknown or not self.criteria:
            raise ConfigError(f"criteria: {unknown or 'empty'}; choose from the report's six {list(CRITERIA)}")
        if self.dpo_pairs_criterion is not None and self.dpo_pairs_criterion not in CRITERIA:
            raise ConfigError(f"dpo_pairs_criterion: {self.dpo_pairs_criterion!r} is not one of {list(CRITERIA)}")
        if self.judge is not None and not isinstance(self.judge, dict):
            raise ConfigError("judge: generator settings (a mapping with 'backend'), or null for no judge")
        for key, low in (("samples", 1), ("pairs_per_query", 1)):
            if getattr(self, key) < low:
                raise ConfigError(f"{key}: must be >= {low}, got {getattr(self, key)}")
        if not 0 <= self.eval_percent < 100:
            raise ConfigError(f"eval_percent: must be in [0, 100), got {self.eval_percent}")
        if not self.concise_ratio > 1:
            raise ConfigError(f"concise_ratio: must be > 1, got {self.concise_ratio}")


@dataclass(frozen=True)
class Response:
    text: str
    policy: str
    temperature: float


def read_queries(path: str, limit: int | None = None) -> list[dict]:
    """Queries as {id, category, messages, reference (dict or None)}; ConfigError naming FILE:LINE or the key."""
    source = Path(path)
    if source.is_dir():
        from datasets import load_from_disk

        rows = [dict(row) for row in load_from_disk(str(source))]
        where = [f"{source}[{i}]" for i in range(len(rows))]
    elif source.is_file():
        rows, where = [], []
        for n, line in enumerate(source.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{source}:{n}: not valid JSON ({exc.msg})") from exc
                where.append(f"{source}:{n}")
    else:
        raise ConfigError(f"queries_path: {source} does not exist")
    queries = []
    for row, at in zip(rows[:limit] if limit else rows, where, strict=False):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) for m in prompt):
            raise ConfigError(f"{at}: 'prompt' must be a string or a non-empty list of messages")
        reference = row.get("reference")
        try:
            reference = parse_reference(reference, at) if reference else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        key = row.get("id") or hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]
        queries.append({"id": str(key), "category": row.get("category") or "general", "messages": prompt,
                        "reference": reference})
    if not queries:
        raise ConfigError(f"queries_path: {source} holds no queries")
    return queries


def _set_temperature(generator: Generator, temperature: float, name: str) -> None:
    if not hasattr(generator, "temperature"):
        raise ConfigError(f"policies: {name}'s backend ({generator.name}) has no temperature to vary")
    generator.temperature = temperature


def configured_policies(config: RMPreferenceConfig) -> Iterator[tuple[str, Generator]]:
    """(name, generator) per entry of `policies`, each built when its turn comes (one model loaded at a time)."""
    for policy in config.policies:
        settings = {k: v for k, v in policy.items() if k != "name"}
        try:
            yield policy["name"], make_generator(settings, seed=config.seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"policies ({policy['name']}): {exc}") from exc


def sample_responses(config: RMPreferenceConfig, queries: list[dict], policies: Iterable[tuple[str, Generator]],
                     progress=print) -> list[list[Response]]:
    """Every policy's responses to every query at every temperature, in order."""
    prompts = [Query(category=q["category"], messages=tuple(q["messages"]), reference=q["reference"] or {},
                     source=f"rm_preferences:{q['id']}") for q in queries]  # fmt: skip
    responses: list[list[Response]] = [[] for _ in queries]
    for name, generator in policies:
        for t, temperature in enumerate(config.temperatures):
            _set_temperature(generator, temperature, name)
            if hasattr(generator, "reseed"):
                generator.reseed(config.seed + 1000 * t)
            start = time.monotonic()
            for i, candidates in enumerate(generator.generate(prompts, config.samples)):
                responses[i] += [Response(c.text, name, temperature) for c in candidates]
            progress(f"rm_preferences: {name} at temperature {temperature}: {len(prompts)} queries x "
                     f"{config.samples} in {time.monotonic() - start:.1f} s")
    return responses


def draw_pairs(responses: list[Response], limit: int, rng: random.Random) -> list[tuple[Response, Response]]:
    """Up to `limit` pairs of different texts, pairs across settings first, in a seeded order."""
    unique = list({r.text: r for r in responses if r.text.strip()}.values())
    pairs = list(itertools.combinations(unique, 2))
    rng.shuffle(pairs)
    pairs.sort(key=lambda p: (p[0].policy, p[0].temperature) == (p[1].policy, p[1].temperature))  # stable
    return pairs[:limit]


def judge_prompt(messages: list[dict], criterion: str, first: str, second: str) -> tuple[dict, ...]:
    conversation = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)
    user = (
        f"Criterion: {criterion}. {RUBRICS[criterion]}\n\n[Conversation]\n{conversation}\n\n"
        f"[Response A]\n{first[:MAX_JUDGED_CHARS]}\n\n[Response B]\n{second[:MAX_JUDGED_CHARS]}\n\n"
        f"(Responses longer than {MAX_JUDGED_CHARS} characters are cut.) Which response is better on {criterion}?"
    )
    return ({"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user})


def parse_verdict(text: str) -> tuple[str | None, str]:
    """('A' | 'B' | None, reason) from a judge's answer: a `Verdict: X` line, else an answer that is just A or B."""
    match = _VERDICT.search(text)
    verdict = match.group(1).upper() if match else None
    if verdict is None and text.strip().upper() in ("A", "B"):
        verdict = text.strip().upper()
    reason = _REASON.search(text)
    return verdict, (reason.group(1) if reason else text).strip()[:MAX_REASON_CHARS]


def _row(query: dict, chosen: Response, rejected: Response, criterion: str, source: str, reason: str) -> dict:
    return {
        "id": f"{query['id']}:{criterion}:{hashlib.sha256((chosen.text + rejected.text).encode()).hexdigest()[:8]}",
        "query_id": query["id"],
        "category": query["category"],
        "criterion": criterion,
        "prompt": query["messages"],
        "chosen": [{"role": "assistant", "content": chosen.text}],
        "rejected": [{"role": "assistant", "content": rejected.text}],
        "label_source": source,
        "reason": reason,
        "chosen_from": {"policy": chosen.policy, "temperature": chosen.temperature},
        "rejected_from": {"policy": rejected.policy, "temperature": rejected.temperature},
    }


def label_pairs(config: RMPreferenceConfig, queries: list[dict], pairs: list[list[tuple[Response, Response]]],
                judge: Generator | None, counts: Counter, progress=print) -> list[dict]:
    """Per pair and criterion: verifier, then the length rule, then the judge (both orders); see the module doc."""
    ref_keys = [json.dumps(q["reference"], sort_keys=True) if q["reference"] else None for q in queries]
    unique = list(dict.fromkeys((key, r.text) for key, qp in zip(ref_keys, pairs, strict=True)
                                if key for p in qp for r in p))  # fmt: skip
    results = verify_many([text for _, text in unique], [ref for ref, _ in unique]) if unique else []
    verdicts = {key: result for key, result in zip(unique, results, strict=True)}

    def passed(key: str | None, response: Response) -> bool | None:
        return None if key is None else verdicts[(key, response.text)].passed

    rows, to_judge = [], []
    for query, key, query_pairs in zip(queries, ref_keys, pairs, strict=True):
        for a, b in query_pairs:
            pass_a, pass_b = passed(key, a), passed(key, b)
            for criterion in config.criteria:
                if criterion in VERIFIED_CRITERIA and pass_a is not None and pass_a != pass_b:
                    chosen, rejected = (a, b) if pass_a else (b, a)
                    details = verdicts[(key, rejected.text)].details
                    reason = "verifier: the rejected response fails: " + json.dumps(details, default=str)[:400]
                    rows.append(_row(query, chosen, rejected, criterion, "verifier", reason))
                    counts[f"{criterion}/verifier"] += 1
                    continue
                if criterion == "conciseness" and pass_a == pass_b:
                    short, long = sorted((a, b), key=lambda r: len(r.text))
                    if len(long.text) >= config.concise_ratio * max(len(short.text), 1):
                        reason = f"rule: {len(short.text)} vs {len(long.text)} characters, equal verifier outcome"
                        rows.append(_row(query, short, long, criterion, "rule", reason))
                        counts[f"{criterion}/rule"] += 1
                        continue
                if judge is None:
                    counts[f"{criterion}/unlabelled"] += 1
                else:
                    to_judge.append((query, a, b, criterion))
    if to_judge:
        asks = [Query(category="judge", messages=judge_prompt(q["messages"], c, x.text, y.text), reference={},
                      source=f"judge:{q['id']}:{c}")
                for q, a, b, c in to_judge for x, y in ((a, b), (b, a))]  # fmt: skip
        progress(f"rm_preferences: asking the judge ({judge.name}) {len(asks)} questions ({len(to_judge)} pair "
                 "labels, each in both orders)")
        start = time.monotonic()
        answers = [candidates[0].text for candidates in judge.generate(asks, 1)]
        progress(f"rm_preferences: judge answered in {time.monotonic() - start:.1f} s")
        for n, (query, a, b, criterion) in enumerate(to_judge):
            (first, reason), (second, _) = parse_verdict(answers[2 * n]), parse_verdict(answers[2 * n + 1])
            if first is None or second is None:
                counts[f"{criterion}/judge_unparsable"] += 1
            elif first == second:  # A then B named the same position: the judge follows the position, not the text
                counts[f"{criterion}/judge_inconsistent"] += 1
            else:
                chosen, rejected = (a, b) if first == "A" else (b, a)
                rows.append(_row(query, chosen, rejected, criterion, "judge", f"judge: {reason}"))
                counts[f"{criterion}/judge"] += 1
    return rows


def dpo_rows(path: str, criterion: str | None) -> list[dict]:
    """The builders' DPO pairs as rows of this file (label_source "dpo")."""
    from datasets import load_from_disk

    if not Path(path).is_dir():
        raise ConfigError(f"dpo_pairs_path: {path} is not a dataset directory (the builders' preference split)")
    rows = []
    for i, row in enumerate(load_from_disk(path)):
        query_id = str(row.get("id") or f"dpo-{i}")
        rows.append({"id": f"{query_id}:dpo", "query_id": query_id, "category": row.get("category") or "dpo",
                     "criterion": criterion, "prompt": row["prompt"], "chosen": row["chosen"],
                     "rejected": row["rejected"], "label_source": "dpo",
                     "reason": "dpo: the builders' verified pair (chosen passes its verifier, rejected fails)"})
    return rows


def in_eval(query_id: str, percent: int) -> bool:
    return int(hashlib.sha256(query_id.encode()).hexdigest()[:8], 16) % 100 < percent


def build(config: RMPreferenceConfig, *, policies: dict[str, Generator] | None = None,
          judge: Generator | None = None, progress=print) -> dict:
    """Sample, pair, label, add the DPO pairs and write train.jsonl / eval.jsonl / summary.json. `policies` and
    `judge` replace the configured generators (tests pass scripted ones). Returns the summary."""
    start = time.monotonic()
    queries = read_queries(config.queries_path, config.max_queries)
    generators = policies.items() if policies is not None else configured_policies(config)
    responses = sample_responses(config, queries, generators, progress)
    if judge is None and config.judge is not None:
        judge = make_generator(dict(config.judge), seed=config.seed)
    rng = random.Random(config.seed)
    pairs = [draw_pairs(r, config.pairs_per_query, rng) for r in responses]
    counts: Counter = Counter()
    rows = label_pairs(config, queries, pairs, judge, counts, progress)
    if config.dpo_pairs_path:
        added = dpo_rows(config.dpo_pairs_path, config.dpo_pairs_criterion)
        counts[f"{config.dpo_pairs_criterion}/dpo"] += len(added)
        rows += added

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = {"train": [r for r in rows if not in_eval(r["query_id"], config.eval_percent)],
             "eval": [r for r in rows if in_eval(r["query_id"], config.eval_percent)]}  # fmt: skip
    for name, part in split.items():
        write_atomic(out / f"{name}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part))
    settings = Counter(f"{r.policy}@{r.temperature}" for rs in responses for r in rs)
    summary = {
        "queries": len(queries),
        "responses": sum(settings.values()),
        "responses_per_setting": dict(sorted(settings.items())),
        "pairs": sum(len(p) for p in pairs),
        "rows": {name: len(part) for name, part in split.items()},
        "labels": dict(sorted(counts.items())),
        "by_criterion": {c: sum(1 for r in rows if r["criterion"] == c) for c in CRITERIA},
        "seconds": round(time.monotonic() - start, 1),
    }
    write_json(out / "summary.json", summary)
    progress(f"rm_preferences: wrote {out} ({summary['rows']['train']} train, {summary['rows']['eval']} eval rows) "
             f"in {summary['seconds']} s")
    for criterion in config.criteria:
        by_source = {k.split("/")[1]: v for k, v in counts.items() if k.startswith(criterion + "/")}
        progress(f"  {criterion}: {by_source}")
    return summary


def main(argv: list[str] | None = None) -> dict:
    return build(parse_config(RMPreferenceConfig, argv), progress=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    run_cli(main)
