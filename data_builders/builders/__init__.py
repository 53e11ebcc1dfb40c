"""Verified builders, one module per area, over one rejection-sampling core (`sampling`).

- `math`: GSM8K/MATH seeds and procedural arithmetic (SFT area 2), checked by the math verifier
- `code`: MBPP/HumanEval seeds and procedural function tasks (area 3), tests run in the sandbox
- `instruction`: base tasks plus verifiable constraints, IFEval seeds (area 4), checked by the instruction verifier
- `instruction_code`: the report's code-verified instructions (area 4): a check function accepted only if its own
  unit tests pass in the sandbox, then used to select responses
- `long`: back-translated long documents with output-length constraints (area 1)
- `structured`: tabular QA, fact verification, error correction, structure, JSON output over pandas tables (area 5)
- `logic`: solver-checked deductive, inductive, analogical, causal, statistical problems in three forms (area 6)
- `cross_lingual`: tasks with language-independent answers asked in five other languages (area 7)
- `system`: system prompts of persona/tone/format/constraint parts, format verified on the response (area 8)
- `tool_calling`: function calling in Qwen2.5's `<tool_call>` format over a small tool library, tool results run in
  the sandbox, each call or final answer checked by the `tool_call` verifier (docs/tool-calling.md)

Each area module has `make_queries(area_config, seed, generator) -> (queries, dropped)`, `dropped` counting task
candidates thrown away before sampling (e.g. check functions failing their own tests); the generator is there for
tasks a model writes (`instruction_code` with `author: generator`), the other areas ignore it. A module may have
`batch_verifier(area_config)` returning a verdict-identical batched verifier (e.g. over the sandbox's `run_many`),
and `response_generator(area_config, generator, seed)` replacing the generator for the sampling step (long: the
document is the response; logic: refinement rounds). `build_areas` runs them all; area 9 (response filtering) and
the mixture run on their output (`data_builders.filters`, `data_builders.mixture`).
"""

import importlib
from collections import Counter
from collections.abc import Callable

from data_builders.builders.sampling import AreaStats, Scorer, assign_splits, build_split_rows, verify_each
from data_builders.config import AreaConfig, DataConfig
from data_builders.generators import Generator, make_generator
from reward.client import RewardClient

__all__ = ["AreaStats", "area_module", "build_area", "build_areas", "guided_areas", "make_scorer"]


def area_module(name: str):
    """The builder module of area `name` (its `make_queries`, optional `batch_verifier`/`response_generator`)."""
    return importlib.import_module(f"data_builders.builders.{name}")


def make_scorer(config: DataConfig) -> RewardClient | None:
    """The reward service's client for reward-guided rejection sampling (`config.guidance`), or None."""
    if not config.guidance:
        return None
    return RewardClient(config.guidance["url"], timeout=float(config.guidance.get("timeout_s", 60.0)))


def guided_areas(config: DataConfig) -> frozenset[str]:
    """Areas whose rejection sampling the reward model guides (`guidance.areas`)."""
    return frozenset(config.guidance.get("areas", [])) if config.guidance else frozenset()


def build_area(name: str, area: AreaConfig, generator: Generator, seed: int,
               progress: bool = True, scorer: Scorer | None = None) -> tuple[dict[str, list[dict]], AreaStats]:
    """Rows per split of one area (`area` is its parsed config) and what was kept and dropped; with `scorer`,
    passing candidates are chosen by reward-model score (builders/sampling.py `_row`)."""
    module = area_module(name)
    queries, dropped = module.make_queries(area, seed, generator=generator)
    if hasattr(module, "response_generator"):  # e.g. long: the document is the response; logic: refinement
        generator = module.response_generator(area, generator, seed)
    splits = assign_splits(queries, area.splits, seed, name)
    verify_batch: Callable = module.batch_verifier(area) if hasattr(module, "batch_verifier") else verify_each
    stats = AreaStats(dropped=Counter(dropped))
    rows = build_split_rows(name, splits, generator, area.k, stats, verify_batch, progress=progress, scorer=scorer)
    return rows, stats


def build_areas(config: DataConfig, generator: Generator | None = None,
                progress: bool = True) -> tuple[dict[str, list[dict]], dict[str, AreaStats]]:
    """Every configured area (in the order of `config.AREAS`), its rows gathered by split, and each area's stats."""
    generator = generator or make_generator(config.generator, seed=config.seed)
    scorer, guided = make_scorer(config), guided_areas(config)
    splits: dict[str, list[dict]] = {}
    stats: dict[str, AreaStats] = {}
    for name, area in config.area_configs().items():
        rows, stats[name] = build_area(name, area, generator, config.seed, progress=progress,
                                       scorer=scorer if name in guided else None)
        for split, split_rows in rows.items():
            splits.setdefault(split, []).extend(split_rows)
    return splits, stats
