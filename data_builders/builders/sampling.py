"""Rejection sampling, the core every verified area shares: generate k, verify each, keep, pair, or query.

For each query assigned to a split:
- its `gold` response (when known) must pass its own reference, else the query is dropped as broken;
- k candidates come from the generator and each is verified against the query's `reference`;
- `sft`: the first passing candidate becomes an SFT row carrying the verifier's result as its proof (timings
  left out, so rebuilds are byte-identical);
- `preference` / `preference_eval`: the first passing candidate (chosen) against the first failing one (rejected),
  `reason` = the failing candidate's kind and the verifier's own explanation;
- `rl_queries` / `heldout`: a query row carrying the reference; for `rl_queries` the variance of the k candidates'
  scores is stored as `reward_variance` (the report orders GRPO queries by it, highest first).

Queries that cannot give their row (no passing candidate for SFT, no failing one for a pair) are dropped and
counted by reason, as every failing candidate is counted by why it failed: the summary the CLI prints.
"""

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from tqdm import tqdm

from data_builders.generators import Candidate, Generator, Query
from data_builders.records import assistant_message, preference_record, rl_query_record, sft_record
from verifiers import VerifierResult, verify

SPLIT_KINDS = {"sft": "sft", "preference": "preference", "preference_eval": "preference",
               "rl_queries": "rl_query", "heldout": "rl_query"}
_ERROR_NAME = re.compile(r"(\w+(?:Error|Exception))\b")  # "AssertionError: ..." on a traceback's last line
# Verifier details that differ from run to run (wall-clock timings): left out of the SFT row's proof so that a
# rebuild is byte-identical.
VOLATILE_DETAILS = frozenset({"duration_s"})
BATCH = 64  # queries generated and verified together: the unit of progress and of sandbox batching

VerifyBatch = Callable[[Sequence[tuple[str, dict]]], list[VerifierResult]]


def distinct_queries(queries: Iterable[Query], dropped: Counter, reason: str = "duplicate prompt",
                     taken: set[str] | None = None) -> list[Query]:
    """`queries` in order without repeats of `Query.key` (also skipping keys already in `taken`, which is updated);
    each repeat is counted in `dropped[reason]`. Consumes the iterable fully, so RNG-driven generators advance as
    they would without the check."""
    taken = set() if taken is None else taken
    out = []
    for query in queries:
        if query.key in taken:
            dropped[reason] += 1
            continue
        taken.add(query.key)
        out.append(query)
    return out


def verify_each(items: Sequence[tuple[str, dict]]) -> list[VerifierResult]:
    """The registry's `verify`, one (response, reference) at a time."""
    return [verify(text, reference) for text, reference in items]


def failure_reason(result: VerifierResult) -> str:
    """The verifier's own words for why a response failed, from its details."""
    details = result.details
    for key in ("failure", "reason", "error"):
        if isinstance(details.get(key), str) and details[key]:
            return details[key]
    if isinstance(details.get("status"), str):
        return f"status {details['status']}"
    return f"{result.verifier} verifier rejected the response"


def reason_tag(result: VerifierResult) -> str:
    """A short, countable form of `failure_reason`, per verifier: "wrong final answer", "failed: SyntaxError",
    "timeout", "not followed: punctuation:no_comma", "check returned False"."""
    details = result.details
    if isinstance(details.get("tag"), str):
        return details["tag"]
    if result.verifier == "code" and isinstance(details.get("status"), str):
        last_line = (details.get("stderr") or "").strip().rpartition("\n")[2]
        error = _ERROR_NAME.match(last_line)
        return details["status"] + (f": {error.group(1)}" if error else "")
    if result.verifier == "instruction" and isinstance(details.get("constraints"), list):
        failed = [c["id"] for c in details["constraints"] if not c.get("passed")]
        if failed:
            return f"not followed: {failed[0]}"
    text = failure_reason(result)
    return text.split(";")[0].split(":")[0].strip()[:60]


@dataclass
class AreaStats:
    """What one area built and threw away; all counts."""

    queries: int = 0
    candidates: int = 0
    passed: int = 0
    rows: Counter = field(default_factory=Counter)  # split -> rows kept
    dropped: Counter = field(default_factory=Counter)  # query-level reason -> queries dropped
    failures: Counter = field(default_factory=Counter)  # candidate-level reason -> failing candidates
    # reward guidance: rows it decided ("sft", "pairs") and rows where it chose otherwise than the first passing
    # (SFT) or first failing (hard negative) candidate ("sft_changed", "rejected_changed")
    guidance: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        out = {"queries": self.queries, "candidates": self.candidates, "passed": self.passed,
               "rows": dict(sorted(self.rows.items())), "dropped": dict(sorted(self.dropped.items())),
               "failures": dict(sorted(self.failures.items()))}
        if self.guidance:  # only guided builds carry it, so unguided manifests keep their bytes
            out["guidance"] = dict(sorted(self.guidance.items()))
        return out


def assign_splits(queries: Sequence[Query], fractions: dict[str, float], seed: int,
                  area: str) -> dict[str, list[Query]]:
    """Shuffle the queries with (seed, area) and cut them into splits by `fractions` (largest remainder).

    A query's split depends only on the set of queries, so splits never share a prompt.
    """
    order = list(queries)
    random.Random(hashlib.sha256(f"{seed}:{area}".encode()).digest()).shuffle(order)
    total = sum(fractions.values())
    exact = {split: len(order) * share / total for split, share in fractions.items()} if total else {}
    counts = {split: int(value) for split, value in exact.items()}
    left = len(order) - sum(counts.values())
    for split in sorted(exact, key=lambda s: (counts[s] - exact[s], s))[:left]:
        counts[split] += 1
    out, start = {}, 0
    for split in fractions:
        out[split] = order[start : start + counts.get(split, 0)]
        start += counts.get(split, 0)
    return out


def _variance(scores: list[float]) -> float:
    mean = sum(scores) / len(scores)
    return sum((s - mean) ** 2 for s in scores) / len(scores)


class Scorer(Protocol):
    """The reward service's client (reward.client.RewardClient): one result with a numeric `reward` per item."""

    def score(self, items: list[dict]) -> list[dict]: ...


RM_DIGITS = 4  # reward-model scores are rounded before they choose: batch-to-batch float noise must not flip a tie


def _rm_scores(scorer: Scorer, queries: Sequence[Query],
               per_query: dict[int, list[tuple[Candidate, VerifierResult]]]) -> dict[int, list[float]]:
    """Each candidate's reward-model score, candidates of one query in order; each distinct text scored once.
    Items go without a reference, so the score is the reward model's judgement alone: the verifier has spoken."""
    texts = list(dict.fromkeys((i, c.text) for i, verified in per_query.items() for c, _ in verified))
    items = [{"prompt": list(queries[i].messages), "response": text, "reference": None} for i, text in texts]
    results = scorer.score(items) if items else []
    by_text = {key: round(float(result["reward"]), RM_DIGITS) for key, result in zip(texts, results, strict=True)}
    return {i: [by_text[(i, c.text)] for c, _ in verified] for i, verified in per_query.items()}


Scored = tuple[Candidate, VerifierResult, float | None]


def _best(scored: list[Scored]) -> Scored:
    """The highest-scored entry (the first of equals); the first entry when there are no scores."""
    if scored[0][2] is None:
        return scored[0]
    return max(scored, key=lambda entry: entry[2])  # max keeps the first of equal scores


def _row(split: str, query: Query, verified: list[tuple[Candidate, VerifierResult]],
         stats: AreaStats, scores: list[float] | None = None) -> dict | None:
    """The row a query gives in `split`. Without `scores` the first passing candidate is chosen and the first
    failing one rejected. With reward-model `scores` (the report's rejection sampling "guided by a reward model
    and the annotated answer"): SFT keeps the best-scored passing candidate; a pair puts it against the failing
    candidate the reward model rates highest (the hard negative); the scores are kept in the record (SFT: the
    proof's `reward_model`; pairs: the end of `reason`)."""
    kind = SPLIT_KINDS[split]
    prompt = list(query.messages)
    scored = [(c, r, None if scores is None else scores[j]) for j, (c, r) in enumerate(verified)]
    passing = [entry for entry in scored if entry[1].passed]
    failing = [entry for entry in scored if not entry[1].passed]
    if kind == "rl_query":
        variance = _variance([r.score for _, r in verified]) if split == "rl_queries" and verified else None
        return rl_query_record(query.category, prompt, query.reference, variance)
    if not verified:
        stats.dropped["no candidates (needs a model backend)"] += 1
        return None
    if not passing:
        stats.dropped["no passing candidate"] += 1
        return None
    chosen, proof, chosen_score = _best(passing)
    if kind == "sft":
        details = {k: v for k, v in proof.details.items() if k not in VOLATILE_DETAILS}
        if chosen_score is not None:
            details["reward_model"] = chosen_score
            stats.guidance["sft"] += 1
            stats.guidance["sft_changed"] += chosen.text != passing[0][0].text
        return sft_record(query.category, [*prompt, assistant_message(chosen.text)], query.source,
                          replace(proof, details=details))
    distinct = [entry for entry in failing if entry[0].text != chosen.text]
    if not distinct:
        stats.dropped["no failing candidate"] += 1
        return None
    rejected, result, rejected_score = _best(distinct)
    reason = f"{rejected.kind}: {failure_reason(result)}"
    if chosen_score is not None:
        stats.guidance["pairs"] += 1
        stats.guidance["rejected_changed"] += rejected.text != distinct[0][0].text
        reason += f" [reward model: chosen {chosen_score:.{RM_DIGITS}f}, rejected {rejected_score:.{RM_DIGITS}f}]"
    return preference_record(query.category, prompt, chosen.text, rejected.text, reason)


@dataclass
class Prepared:
    """One batch after its generation half: gold verdicts known, candidates drawn for the sound queries."""

    batch: list[tuple[str, Query]]
    known: dict[tuple[int, str], VerifierResult]  # (query, text) -> verdict: each text is verified once
    sound: list[int]  # queries whose gold (if any) passed their reference
    generated: list[list[Candidate]]  # candidates of each sound query, in `sound` order


def prepare_batch(batch: list[tuple[str, Query]], generator: Generator,
                  verify_batch: VerifyBatch = verify_each, k: int = 1) -> Prepared:
    """The generation half of a batch: check each gold answer against its reference, then draw k candidates for
    the sound queries. Runs ahead of `finish_batch` in the scaled engine (data_builders.engine)."""
    queries = [query for _, query in batch]
    known: dict[tuple[int, str], VerifierResult] = {}
    golds = [i for i, q in enumerate(queries) if q.gold is not None]
    for i, result in zip(golds, verify_batch([(queries[i].gold, queries[i].reference) for i in golds]),
                         strict=True):
        known[(i, queries[i].gold)] = result
    sound = [i for i in range(len(queries)) if queries[i].gold is None or known[(i, queries[i].gold)].passed]
    generated = generator.generate([queries[i] for i in sound], k) if sound else []
    return Prepared(list(batch), known, sound, generated)


def finish_batch(prepared: Prepared, stats: AreaStats, verify_batch: VerifyBatch = verify_each,
                 scorer: Scorer | None = None) -> list[tuple[str, dict]]:
    """The verification half: verify every candidate, count, and make each query's row; (split, row) in batch
    order. With `scorer` (reward-guided rejection sampling), every verified candidate is scored by the reward
    model and the rows are chosen by that score (see `_row`)."""
    batch, known, sound = prepared.batch, prepared.known, prepared.sound
    queries = [query for _, query in batch]
    if len(sound) < len(queries):
        stats.dropped["reference rejects its gold answer"] += len(queries) - len(sound)
    out: list[tuple[str, dict]] = []
    if sound:
        flat = [(i, c) for i, cands in zip(sound, prepared.generated, strict=True) for c in cands]
        todo = list(dict.fromkeys((i, c.text) for i, c in flat if (i, c.text) not in known))
        known.update(zip(todo, verify_batch([(text, queries[i].reference) for i, text in todo]), strict=True))
        results = [known[(i, c.text)] for i, c in flat]
        per_query: dict[int, list[tuple[Candidate, VerifierResult]]] = {i: [] for i in sound}
        for (i, candidate), result in zip(flat, results, strict=True):
            per_query[i].append((candidate, result))
            stats.candidates += 1
            stats.passed += result.passed
            if not result.passed:
                stats.failures[reason_tag(result)] += 1
        scores = _rm_scores(scorer, queries, per_query) if scorer is not None else {}
        for i in sound:
            split, query = batch[i]
            row = _row(split, query, per_query[i], stats, scores.get(i))
            if row is not None:
                out.append((split, row))
                stats.rows[split] += 1
    stats.queries += len(batch)
    return out


def build_split_rows(area: str, splits: dict[str, list[Query]], generator: Generator, k: int, stats: AreaStats,
                     verify_batch: VerifyBatch = verify_each, progress: bool = True,
                     scorer: Scorer | None = None) -> dict[str, list[dict]]:
    """Rows of every split of one area, with `stats` counting what was kept and dropped and why."""
    jobs = [(split, query) for split, queries in splits.items() for query in queries]
    out: dict[str, list[dict]] = {split: [] for split in splits}
    bar = tqdm(total=len(jobs), desc=f"{area:>16}", unit="query", disable=not progress, leave=True)
    for start in range(0, len(jobs), BATCH):
        batch = jobs[start : start + BATCH]
        for split, row in finish_batch(prepare_batch(batch, generator, verify_batch, k), stats, verify_batch, scorer):
            out[split].append(row)
        bar.update(len(batch))
    bar.close()
    return out
