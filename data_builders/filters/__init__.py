"""Response filtering (SFT area 9 of the report) and decontamination, run on every area's rows after sampling.

Configured by the `filters` mapping of the data config (absent: nothing is filtered):

    filters:
      critic: {backend: reward, url: "http://127.0.0.1:8765", threshold: 0.0}   # or {backend: generator}, or none
      dedup: {threshold: 0.85, num_perm: 128, shingle: 5}                      # MinHash near-duplicate removal
      decontaminate: {eval_files: [data/eval/gsm8k_test.jsonl], min_tokens: 13, min_ratio: 0.6}

In this order, on the area rows (the tiny demo's arithmetic splits are left alone):
1. SFT rows are kept only if every scorer accepts them: the verifier that proved them (`verification.passed`) and
   the critic, when one is configured (report: "a response is kept only if every scorer finds it flawless");
2. SFT rows that are near-duplicates of an earlier kept row (prompt and response text) are dropped;
3. every row of every split whose text has, with some evaluation sample, a longest common subsequence of at least
   `min_tokens` tokens and at least `min_ratio` x the shorter length is dropped (RECIPE.md's rule).
`apply_filters` returns the kept rows and a report of what each step dropped, per area.
"""

from collections import Counter
from dataclasses import dataclass, field

from data_builders.filters.critic import GeneratorCritic, RewardCritic
from data_builders.filters.decontaminate import MIN_RATIO, MIN_TOKENS, Decontaminator, read_eval_file
from data_builders.filters.dedup import near_duplicates
from data_builders.generators import Generator

CRITICS = ("none", "reward", "generator")
_SECTIONS = {"critic": {"backend", "url", "threshold", "timeout_s"},
             "dedup": {"threshold", "num_perm", "shingle"},
             "decontaminate": {"eval_files", "min_tokens", "min_ratio"}}


@dataclass
class FilterConfig:
    """The `filters` mapping, checked; a section left out is not run."""

    critic: str = "none"  # who judges beside the verifiers: none, reward (the service) or generator
    critic_url: str | list[str] | None = None  # reward service URL(s) with critic reward
    critic_threshold: float = 0.0  # ours: the combined reward a response needs (the service's scale)
    critic_timeout_s: float = 60.0
    dedup: bool = False
    dedup_threshold: float = 0.85  # ours: estimated Jaccard of 5-token shingles at which rows are near-duplicates
    dedup_num_perm: int = 128
    dedup_shingle: int = 5
    eval_files: list[str] = field(default_factory=list)
    min_tokens: int = MIN_TOKENS  # RECIPE.md
    min_ratio: float = MIN_RATIO  # RECIPE.md


def _fail(key: str, expected: str, value: object) -> ValueError:
    return ValueError(f"config key 'filters.{key}': expected {expected}, got {value!r}")


def _number(section: dict, key: str, where: str, low: float, high: float, integer: bool = False) -> None:
    value = section.get(key)
    if value is None:
        return
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise _fail(f"{where}.{key}", f"{'an integer' if integer else 'a number'} in [{low}, {high}]", value)


def parse_filters(values: object) -> FilterConfig:
    """FilterConfig from the YAML mapping; unknown sections or keys and bad values raise ValueError naming them."""
    if not isinstance(values, dict):
        raise ValueError(f"config key 'filters': expected a mapping with sections {sorted(_SECTIONS)}, got {values!r}")
    unknown = sorted(set(values) - set(_SECTIONS))
    if unknown:
        raise ValueError(f"config key 'filters': unknown section(s) {unknown}; known: {sorted(_SECTIONS)}")
    config = FilterConfig()
    for name, section in values.items():
        if section is None:
            continue
        if not isinstance(section, dict):
            raise _fail(name, "a mapping of settings (or null to skip)", section)
        bad = sorted(set(section) - _SECTIONS[name])
        if bad:
            raise _fail(name, f"keys from {sorted(_SECTIONS[name])} (unknown: {bad})", sorted(section))
    critic = values.get("critic") or {}
    config.critic = critic.get("backend", "none")
    if config.critic not in CRITICS:
        raise _fail("critic.backend", f"one of {list(CRITICS)}", config.critic)
    config.critic_url = critic.get("url")
    if config.critic == "reward" and not config.critic_url:
        raise _fail("critic.url", "the reward service URL (or a list of replica URLs) with backend reward", None)
    _number(critic, "threshold", "critic", -1e9, 1e9)
    _number(critic, "timeout_s", "critic", 1e-3, 1e6)
    config.critic_threshold = float(critic.get("threshold", 0.0))
    config.critic_timeout_s = float(critic.get("timeout_s", 60.0))
    dedup = values.get("dedup")
    if dedup is not None:
        _number(dedup, "threshold", "dedup", 0.05, 0.95)  # datasketch needs >= 2 LSH bands: no higher
        _number(dedup, "num_perm", "dedup", 16, 4096, integer=True)
        _number(dedup, "shingle", "dedup", 1, 64, integer=True)
        config.dedup = True
        config.dedup_threshold = float(dedup.get("threshold", 0.85))
        config.dedup_num_perm = dedup.get("num_perm", 128)
        config.dedup_shingle = dedup.get("shingle", 5)
        from datasketch import MinHashLSH

        try:  # datasketch refuses settings that leave fewer than two LSH bands
            MinHashLSH(threshold=config.dedup_threshold, num_perm=config.dedup_num_perm)
        except ValueError as exc:
            raise _fail("dedup", f"threshold and num_perm datasketch accepts ({exc})", dedup) from exc
    decon = values.get("decontaminate") or {}
    files = decon.get("eval_files", [])
    if not isinstance(files, list) or not all(isinstance(p, str) and p for p in files):
        raise _fail("decontaminate.eval_files", "a list of evaluation file paths", files)
    _number(decon, "min_tokens", "decontaminate", 1, 10**6, integer=True)
    _number(decon, "min_ratio", "decontaminate", 0.0, 1.0)
    config.eval_files = files
    config.min_tokens = decon.get("min_tokens", MIN_TOKENS)
    config.min_ratio = float(decon.get("min_ratio", MIN_RATIO))
    return config


def row_text(row: dict) -> str:
    """Every turn of a row (SFT messages, or prompt + chosen + rejected, or an RL prompt), joined."""
    turns = row.get("messages") or [*row.get("prompt", []), *row.get("chosen", []), *row.get("rejected", [])]
    return "\n".join(m["content"] for m in turns)


def make_critic(config: FilterConfig, generator: Generator | None):
    if config.critic == "reward":
        return RewardCritic(config.critic_url, config.critic_threshold, config.critic_timeout_s)
    if config.critic == "generator":
        if generator is None or generator.name == "procedural":
            raise ValueError("config key 'filters.critic.backend': 'generator' needs a model generator backend "
                             "(hf or openai); the procedural one cannot judge")
        return GeneratorCritic(generator)
    return None


def apply_filters(splits: dict[str, list[dict]], config: FilterConfig, generator: Generator | None = None,
                  critic=None, tests: list[str] | None = None) -> tuple[dict[str, list[dict]], dict]:
    """(kept rows per split, report {step: {area: rows dropped}}), steps in the module docstring's order.

    `tests` are the evaluation samples when already read (the CLI reads them before building); else the
    configured `eval_files` are read here."""
    if tests is None:
        tests = [text for path in config.eval_files for text in read_eval_file(path)]
    report = {"critic": Counter(), "verifier": Counter(), "near_duplicate": Counter(), "contaminated": Counter()}
    out = {split: list(rows) for split, rows in splits.items()}
    sft = out.get("sft", [])
    critic = critic if critic is not None else make_critic(config, generator)
    verdicts = critic.judge(sft) if critic is not None and sft else [(True, "")] * len(sft)
    kept = []
    for row, (accepted, _) in zip(sft, verdicts, strict=True):
        if not row["verification"]["passed"]:
            report["verifier"][row["category"]] += 1
        elif not accepted:
            report["critic"][row["category"]] += 1
        else:
            kept.append(row)
    if config.dedup and kept:
        twins = near_duplicates([row_text(r) for r in kept], config.dedup_threshold, config.dedup_num_perm,
                                config.dedup_shingle)
        for row, twin in zip(kept, twins, strict=True):
            if twin is not None:
                report["near_duplicate"][row["category"]] += 1
        kept = [row for row, twin in zip(kept, twins, strict=True) if twin is None]
    if "sft" in out:
        out["sft"] = kept
    if tests:
        decon = Decontaminator(tests, config.min_tokens, config.min_ratio)
        for split, rows in out.items():
            clean = []
            for row in rows:
                if decon.match(row_text(row)) is None:
                    clean.append(row)
                else:
                    report["contaminated"][row["category"]] += 1
            out[split] = clean
    summary = {step: dict(sorted(counts.items())) for step, counts in report.items()}
    summary["eval_samples"] = len(tests)
    return out, summary
