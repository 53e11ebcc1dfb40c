"""Builds at the report's scale: streaming, resumable, sharded, with generation overlapping verification.

    python -m data_builders --config configs/data/full.yaml --engine '{"tasks": 64, "workers": 8}'

A config with an `engine` section (`EngineConfig`: executor, tasks, workers, unit and chunk sizes) builds its areas
here instead of in memory. The work is cut into **units**: per area, the seed files in slices of
`unit_queries` lines, then the procedural queries in blocks of `unit_queries`, each block made with its own seed
derived from (seed, area, block). A unit is a pure function of the config: its queries, their splits and, for a
deterministic generator, its rows do not depend on which task runs it, nor on how many tasks there are. Unit `i`
(counted over all areas) goes to task `i % tasks`.

A task makes a unit's queries and runs them in **chunks** of `chunk` queries. A producer thread draws the
candidates of the next chunks (`prefetch` chunks ahead at most: a bounded queue, so a fast generator waits for the
verifier and memory stays bounded) while the task's own thread verifies the previous chunk. Each verified chunk is
written at once, rows first, then its stats file, each under a temporary name then renamed. The stats file is the
chunk's commit mark. A finished unit gets a `done.json`.

**Resume:** run the same command again. Datatrove skips the tasks it recorded as complete. An unfinished task
skips the units with a `done.json` and, inside a unit, the chunks with a stats file. Only the chunk in flight is
generated again. A generator that is a function of the chunk (the procedural backend; the HF backend, reseeded per
chunk) therefore gives final splits byte-identical to an uninterrupted build's. A sampling server gives new samples
for the redone chunk only.

**Merge** (a second datatrove job of one task, after the build job) reads the units in their fixed order, so its
input does not depend on the task count. Per row it applies these steps:
- the same prompt in any two rows, across units and splits: the later row is dropped, so splits never share a
  prompt;
- the filters (`data_builders.filters`): critic, MinHash near-duplicates, decontamination against the
  evaluation sets;
- the mixture's per-area cut, as two passes over the filtered SFT rows.

Memory: units, chunks and the merge's row stream are bounded; what grows with the build is one 12-byte key per
prompt (the cross-split check) and, with `filters.dedup`, the MinHash signature of every kept SFT row (~1 KB
each: the near-duplicate index must see all of them). Rows stream to `<split>.jsonl`, then to a `datasets`
directory per split. Both sit beside `manifest.json`,
`report.json` and `report.md`: counts per area, per rejection reason and per source, plus the decontamination hits
and the duplicate removals. Timings go only to the printed summary, so the output is byte-identical for 1 and N
tasks. The work directory (`<output_dir>.work`) is removed once the output is in place. It holds the config it was
made for, and a different config refuses to resume into it.

**Why datatrove and not Ray Data.** The unit of this job is a task that writes its own shards and must not be
redone once finished. Datatrove's model is exactly that:
- `PipelineStep.run(data, rank, world_size)` on N tasks;
- completion files per task, with `skip_completed`;
- the same pipeline on `LocalPipelineExecutor`, `SlurmPipelineExecutor` or `RayPipelineExecutor`;
- a light, pure-Python install.

Ray Data is a dataflow over blocks in an object store. It has no on-disk record of finished work to resume from,
and it needs a Ray runtime even on one machine. Datatrove provides the scheduling, the completion tracking and the
executors. The parts it does not have are written here: the unit plan, chunk-level resume inside a task, the
generation/verification overlap, and a merge that stays byte-identical across task counts. Its own
dedup/decontamination steps work on `Document` text with their own signatures. Ours are the project's filters,
so a scaled build and an in-memory build apply the same rules.
"""

import dataclasses
import hashlib
import heapq
import json
import math
import queue
import re
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from datasets.utils.tqdm import disable_progress_bars
from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from tqdm import tqdm

from data_builders.builders import area_module, guided_areas, make_scorer
from data_builders.builders.sampling import (
    BATCH,
    AreaStats,
    assign_splits,
    finish_batch,
    prepare_batch,
    verify_each,
)
from data_builders.config import AreaConfig, DataConfig, EngineConfig, parse_engine
from data_builders.filters import make_critic, parse_filters, row_text
from data_builders.filters.decontaminate import Decontaminator, read_eval_file
from data_builders.filters.dedup import NearDuplicateIndex
from data_builders.generators import Candidate, make_generator
from data_builders.mixture import _percentile, _rank, histogram_png, parse_mixture, quotas
from data_builders.seeds import count_lines
from data_builders.writer import FEATURES, MANIFEST, schema_of
from stagekit.atomic import staged_dir, write_atomic
from verifiers.tokens import approx_tokens, count_tokens

SPLIT_ORDER = ("sft", "preference", "preference_eval", "rl_queries", "heldout")
# the report's four DPO domains, by the area that builds them; pairs of other areas are reported by area name
DPO_DOMAINS = {"math": "mathematics", "code": "coding", "instruction": "instruction following",
               "instruction_code": "instruction following", "logic": "logical reasoning"}
SOURCE_FIELDS = ("seed_files", "documents", "author_prompts", "topics", "max_seed_queries", "max_documents")
CONFIG_FILE = "config.json"
REPORT_JSON, REPORT_MD = "report.json", "report.md"
MIXTURE_PNG = "mixture.png"
PROGRESS_EVERY_S = 2.0
# several machines sharing the work dir, each running `local_tasks` tasks from `local_rank_offset` (datatrove's)
LOCAL_OPTIONS = frozenset({"local_tasks", "local_rank_offset"})
_LINE_SUFFIX = re.compile(r"(:\d+)+$")


@dataclass(frozen=True)
class Unit:
    """A slice of one area's queries: `kind` "sources" (seed files, documents, model-written tasks: the queries
    `make_queries` gives without procedural ones, cut to [start, stop)) or "procedural" (`count` queries of block
    `block`, made with the block's own seed)."""

    area: str
    kind: str
    index: int  # position among the area's units
    start: int = 0
    stop: int | None = None
    block: int = 0
    count: int = 0  # queries (procedural) or seed lines (sources; 0 when unknown): the progress bar's total

    @property
    def name(self) -> str:
        return f"{self.area}/{self.kind}-{self.index:05d}"


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, the same on every machine and Python (no `hash()` randomisation)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big") >> 1


def _has_sources(area: AreaConfig) -> bool:
    return bool(area.seed_files or getattr(area, "documents", None) or getattr(area, "author_prompts", 0))


def plan_units(config: DataConfig, engine: EngineConfig) -> list[Unit]:
    """Every unit of the build, in merge order: per area (config order), its source slices, then its blocks."""
    units: list[Unit] = []
    size = engine.unit_queries
    for name, area in config.area_configs().items():
        index = 0
        if _has_sources(area):
            # seed lines are counted (cheap) so seed files spread over tasks; documents and model-written tasks
            # are one unit (their queries come from a model or a document reader, not read twice)
            only_seeds = not (getattr(area, "documents", None) or getattr(area, "author_prompts", 0))
            lines = sum(count_lines(path) for path in area.seed_files) if only_seeds else 0
            if area.max_seed_queries is not None:
                lines = min(lines, area.max_seed_queries)
            pieces = max(1, math.ceil(lines / size)) if only_seeds else 1
            for piece in range(pieces):
                stop = (piece + 1) * size if only_seeds and piece < pieces - 1 else None
                start = piece * size if only_seeds else 0
                lines_here = (min(stop, lines) if stop is not None else lines) - start if only_seeds else 0
                units.append(Unit(name, "sources", index, start=start, stop=stop, count=max(0, lines_here)))
                index += 1
        for block in range(math.ceil(area.procedural / size)):
            count = min(size, area.procedural - block * size)
            units.append(Unit(name, "procedural", index, block=block, count=count))
            index += 1
    return units


def unit_area(config: DataConfig, unit: Unit) -> tuple[AreaConfig, int]:
    """The area settings and the seed that make exactly this unit's queries."""
    area = config.area_configs()[unit.area]
    if unit.kind == "sources":
        return dataclasses.replace(area, procedural=0), config.seed
    blank = {key: ([] if isinstance(getattr(area, key), list) else 0 if key == "author_prompts" else None)
             for key in SOURCE_FIELDS if hasattr(area, key)}
    return dataclasses.replace(area, **blank, procedural=unit.count), derived_seed(config.seed, unit.area, unit.block)


def unit_jobs(config: DataConfig, unit: Unit, generator) -> tuple[list[tuple[str, object]], Counter, AreaConfig, int]:
    """(split, query) jobs of a unit in order, the queries its area dropped, and the area settings and seed that
    made them (`unit_area`)."""
    area, seed = unit_area(config, unit)
    queries, dropped = area_module(unit.area).make_queries(area, seed, generator=generator)
    if unit.kind == "sources":
        queries = queries[unit.start : unit.stop]
    splits = assign_splits(queries, area.splits, seed, unit.area)
    return [(split, query) for split, qs in splits.items() for query in qs], Counter(dropped), area, seed


class WorkDir:
    """The layout of `<output_dir>.work`: `units/<area>/<kind>-<i>/<chunk>.jsonl`, their `.stats.json`, the unit's
    `done.json`, the datatrove logs, and `config.json`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def unit(self, unit: Unit) -> Path:
        return self.root / "units" / unit.area / f"{unit.kind}-{unit.index:05d}"

    def chunk_rows(self, unit: Unit, chunk: int) -> Path:
        return self.unit(unit) / f"{chunk:06d}.jsonl"

    def chunk_stats(self, unit: Unit, chunk: int) -> Path:
        return self.unit(unit) / f"{chunk:06d}.stats.json"

    def done(self, unit: Unit) -> Path:
        return self.unit(unit) / "done.json"

    def logs(self, job: str, tasks: int) -> Path:
        return self.root / "logs" / f"{job}-{tasks}"

    def claim(self, settings: dict) -> None:
        """Record the config this work belongs to; refuse work left by a different one."""
        path = self.root / CONFIG_FILE
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        if path.is_file():
            if path.read_text(encoding="utf-8") != text:
                raise ValueError(f"{self.root} holds an unfinished build of a different config; remove it to start "
                                 f"over, or run the config it was made for (its {CONFIG_FILE})")
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)


def _candidate_tokens(candidates: list[list[Candidate]]) -> int:
    """Tokens generated: the backend's own count where it gives one (HF, OpenAI usage), else approximated."""
    return sum(c.tokens if c.tokens is not None else approx_tokens(c.text) for cands in candidates for c in cands)


def _reseed(generator, seed: int) -> None:
    """Make a model backend's sampling a function of the chunk (HF: torch seed), so a redone chunk repeats."""
    reseed = getattr(generator, "reseed", None)
    if reseed is not None:
        reseed(seed)


def run_unit(config: DataConfig, engine: EngineConfig, unit: Unit, work: WorkDir, generator, scorer=None) -> None:
    """Build one unit, chunk by chunk, skipping chunks already written; mark it done."""
    if work.done(unit).is_file():
        return
    jobs, dropped, area, seed = unit_jobs(config, unit, generator)
    module = area_module(unit.area)
    scorer = scorer if unit.area in guided_areas(config) else None
    respond = module.response_generator(area, generator, seed) if hasattr(module, "response_generator") else generator
    verify_batch = module.batch_verifier(area) if hasattr(module, "batch_verifier") else verify_each
    chunks = [jobs[i : i + engine.chunk] for i in range(0, len(jobs), engine.chunk)]
    pending = [c for c in range(len(chunks)) if not work.chunk_stats(unit, c).is_file()]
    work.unit(unit).mkdir(parents=True, exist_ok=True)
    ready: queue.Queue = queue.Queue(maxsize=engine.prefetch)
    stop = threading.Event()

    def produce() -> None:  # the generation half, `prefetch` chunks ahead of verification at most
        try:
            for c in pending:
                if stop.is_set():
                    return
                _reseed(respond, derived_seed(seed, unit.name, c))
                start = time.perf_counter()
                prepared = prepare_batch(chunks[c], respond, verify_batch, area.k)
                ready.put((c, prepared, time.perf_counter() - start))
        except BaseException as exc:  # handed to the verifying thread, which raises it
            ready.put((None, exc, 0.0))
            return
        ready.put((None, None, 0.0))

    producer = threading.Thread(target=produce, name=f"generate {unit.name}", daemon=True)
    producer.start()
    try:
        while True:
            c, prepared, generate_s = ready.get()
            if c is None:
                if prepared is not None:
                    raise prepared
                break
            stats = AreaStats()
            start = time.perf_counter()
            rows = finish_batch(prepared, stats, verify_batch, scorer)
            verify_s = time.perf_counter() - start
            lines = "".join(json.dumps({"split": split, "row": row}, ensure_ascii=False) + "\n" for split, row in rows)
            write_atomic(work.chunk_rows(unit, c), lines)
            record = {**stats.as_dict(), "tokens": _candidate_tokens(prepared.generated),
                      "generate_s": round(generate_s, 3), "verify_s": round(verify_s, 3)}
            write_atomic(work.chunk_stats(unit, c), json.dumps(record, sort_keys=True))
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue, then let it end
            try:
                ready.get_nowait()
            except queue.Empty:
                producer.join(0.1)
    write_atomic(work.done(unit), json.dumps({"queries": len(jobs), "chunks": len(chunks),
                                              "dropped": dict(sorted(dropped.items()))}, sort_keys=True))


def source_of(row: dict) -> str:
    """A row's source without its line or row number ("seed:gsm8k:gsm8k_train.jsonl:12" -> "seed:gsm8k:
    gsm8k_train.jsonl"): the report counts rows per source file, not per line."""
    return _LINE_SUFFIX.sub("", row.get("source", ""))


class _EngineStep(PipelineStep):
    """A datatrove step carrying the build's settings as plain dicts (what the executors pickle to their tasks)."""

    def __init__(self, config: dict, engine: dict, work_dir: str) -> None:
        super().__init__()
        self.config, self.engine, self.work_dir = config, engine, work_dir


class BuildUnits(_EngineStep):
    """Datatrove step: task `rank` of `world_size` builds units rank, rank + world_size, ..."""

    name = "🧪 verified units"
    type = "BUILD"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        config = DataConfig(**self.config)
        engine = parse_engine(self.engine)
        work = WorkDir(self.work_dir)
        mine = [u for i, u in enumerate(plan_units(config, engine)) if i % world_size == rank]
        if not mine:
            return
        generator = make_generator(config.generator, seed=config.seed)
        scorer = make_scorer(config)
        for unit in mine:
            run_unit(config, engine, unit, work, generator, scorer)
            self.stat_update("units")
        if data:
            yield from data


class MergeUnits(_EngineStep):
    """Datatrove step (one task): join every unit's rows in plan order, filter, mix, write the output."""

    name = "🧩 merge, filter, write"
    type = "MERGE"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        merge(DataConfig(**self.config), parse_engine(self.engine), WorkDir(self.work_dir))
        if data:
            yield from data


def unit_rows(work: WorkDir, unit: Unit) -> Iterator[tuple[str, dict]]:
    """(split, row) of a finished unit, in chunk order."""
    done = json.loads(work.done(unit).read_text(encoding="utf-8"))
    for c in range(done["chunks"]):
        with open(work.chunk_rows(unit, c), encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                yield item["split"], item["row"]


def unit_stats(work: WorkDir, unit: Unit) -> Iterator[dict]:
    """Stats of each written chunk of a unit (finished or not)."""
    folder = work.unit(unit)
    if folder.is_dir():
        for path in sorted(folder.glob("*.stats.json")):
            yield json.loads(path.read_text(encoding="utf-8"))


def settings_of(config: DataConfig) -> dict:
    """The config as recorded in the manifest and the work dir: without output_dir (a copied build keeps its
    bytes) and without `engine` (how many tasks ran it does not change what it is)."""
    settings = {key: value for key, value in dataclasses.asdict(config).items() if key not in ("output_dir", "engine")}
    return settings


class _Streams:
    """One JSONL file per split, appended to as rows pass the filters."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.handles: dict[str, object] = {}
        self.counts: Counter = Counter()
        self.hashes: dict[str, object] = {}

    def write(self, split: str, row: dict) -> None:
        if split not in self.handles:
            self.handles[split] = open(self.folder / f"{split}.jsonl", "w", encoding="utf-8")
            self.hashes[split] = hashlib.sha256()
        ordered = {key: row[key] for key in FEATURES[schema_of(split, [row])]}
        line = json.dumps(ordered, ensure_ascii=False) + "\n"
        self.handles[split].write(line)
        self.hashes[split].update(line.encode())
        self.counts[split] += 1

    def discard(self, split: str) -> Path:
        """Close a split's file (flushing it) and forget it: a scratch split read back, then deleted (the
        unmixed SFT rows the mixture cuts from). Returns its path."""
        self.handles.pop(split).close()
        self.counts.pop(split)
        self.hashes.pop(split)
        return self.folder / f"{split}.jsonl"

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _jsonl_rows(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def _save_split(folder: Path, split: str, sha256: str) -> None:
    """`<split>.jsonl` as a `datasets` directory, streamed through an Arrow cache inside the staged output (the
    split's sha256 is the fingerprint, so the files do not depend on where the build ran)."""
    features = FEATURES[schema_of(split, [])]
    path = folder / f"{split}.jsonl"
    cache = folder / f".cache-{split}"
    if path.stat().st_size == 0:
        dataset = Dataset.from_dict({key: [] for key in features}, features=features)
    else:
        dataset = Dataset.from_generator(_jsonl_rows, gen_kwargs={"path": path}, features=features,
                                         cache_dir=str(cache), fingerprint=sha256[:32])
    dataset.save_to_disk(str(folder / split))
    del dataset
    shutil.rmtree(cache, ignore_errors=True)


def _report_md(report: dict) -> str:
    lines = ["# Data build report", "", "| area | queries | candidates | passed | rows | dropped queries |",
             "|---|---:|---:|---:|---|---:|"]
    for name, area in report["areas"].items():
        rows = ", ".join(f"{s} {n}" for s, n in area["rows"].items()) or "none"
        lines.append(f"| {name} | {area['queries']} | {area['candidates']} | {area['passed']} | {rows} | "
                     f"{sum(area['dropped'].values())} |")
    lines += ["", "## Rows written", "", "| split | rows |", "|---|---:|"]
    lines += [f"| {split} | {n} |" for split, n in report["splits"].items()]
    lines += ["", "## DPO pairs per domain", "", "| domain | pairs |", "|---|---:|"]
    lines += [f"| {domain} | {n} |" for domain, n in report["preference_by_domain"].items()]
    lines += ["", "## Candidates rejected, by reason", "", "| area | reason | candidates |", "|---|---|---:|"]
    for name, area in report["areas"].items():
        for reason, n in sorted(area["failures"].items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"| {name} | {reason} | {n} |")
    lines += ["", "## Queries dropped, by reason", "", "| area | reason | queries |", "|---|---|---:|"]
    for name, area in report["areas"].items():
        for reason, n in sorted(area["dropped"].items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"| {name} | {reason} | {n} |")
    guided = {name: area["guidance"] for name, area in report["areas"].items() if "guidance" in area}
    if guided:
        lines += ["", "## Reward guidance", "",
                  "| area | SFT rows | another passing answer kept | pairs | another hard negative |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {g.get('sft', 0)} | {g.get('sft_changed', 0)} | {g.get('pairs', 0)} | "
                  f"{g.get('rejected_changed', 0)} |" for name, g in guided.items()]
    lines += ["", "## SFT rows per source", "", "| source | rows |", "|---|---:|"]
    lines += [f"| {source} | {n} |" for source, n in report["sources"].items()]
    lines += ["", "## Filters", "", "| step | area | rows removed |", "|---|---|---:|"]
    for step, counts in report["filters"].items():
        if isinstance(counts, dict):
            lines += [f"| {step} | {area} | {n} |" for area, n in counts.items()]
    lines.append(f"\nDecontaminated against {report['filters'].get('eval_samples', 0)} evaluation samples.")
    return "\n".join(lines) + "\n"


def merge(config: DataConfig, engine: EngineConfig, work: WorkDir) -> Path:
    """Join the units, filter, mix and write the output directory (atomically); returns it."""
    units = plan_units(config, engine)
    missing = [u.name for u in units if not work.done(u).is_file()]
    if missing:
        raise RuntimeError(f"merge: {len(missing)} units are not built yet (first: {missing[0]}); run the build again")
    filters = parse_filters(config.filters) if config.filters else None
    tests = [t for path in (filters.eval_files if filters else []) for t in read_eval_file(path)]
    decon = Decontaminator(tests, filters.min_tokens, filters.min_ratio) if tests else None
    judge = make_generator(config.generator, seed=config.seed) if filters and filters.critic == "generator" else None
    critic = make_critic(filters, judge) if filters else None
    removed = {step: Counter() for step in ("duplicate_prompt", "critic", "near_duplicate", "contaminated")}
    areas: dict[str, AreaStats] = {}
    sources: Counter = Counter()
    by_domain: Counter = Counter()  # DPO pairs per domain
    seen: set[bytes] = set()
    near = (NearDuplicateIndex(filters.dedup_threshold, filters.dedup_num_perm, filters.dedup_shingle)
            if filters is not None and filters.dedup else None)
    out = Path(config.output_dir)
    disable_progress_bars()  # one bar per split of a streamed save is noise; the summary says what was written
    with staged_dir(out) as tmp:
        streams = _Streams(tmp)
        mixture = parse_mixture(config.mixture, list(config.area_configs())) if config.mixture else None
        sft_split = "sft" if mixture is None else ".sft-unmixed"
        pending_sft: list[dict] = []

        def flush_sft() -> None:
            verdicts = critic.judge(pending_sft) if critic is not None else [(True, "")] * len(pending_sft)
            for row, (accepted, _) in zip(pending_sft, verdicts, strict=True):
                if not accepted:
                    removed["critic"][row["category"]] += 1
                    continue
                if near is not None and near.add(row_text(row)) is not None:
                    removed["near_duplicate"][row["category"]] += 1
                    continue
                streams.write(sft_split, row)
            pending_sft.clear()

        for unit in units:
            stats = areas.setdefault(unit.area, AreaStats())
            done = json.loads(work.done(unit).read_text(encoding="utf-8"))
            stats.dropped.update(done["dropped"])
            for chunk in unit_stats(work, unit):
                stats.queries += chunk["queries"]
                stats.candidates += chunk["candidates"]
                stats.passed += chunk["passed"]
                stats.rows.update(chunk["rows"])
                stats.dropped.update(chunk["dropped"])
                stats.failures.update(chunk["failures"])
                stats.guidance.update(chunk.get("guidance", {}))
            for split, row in unit_rows(work, unit):
                key = bytes.fromhex(row["id"])  # records.record_id: the category and the prompt, hashed
                if key in seen:
                    removed["duplicate_prompt"][row["category"]] += 1
                    continue
                seen.add(key)
                if decon is not None and decon.match(row_text(row)) is not None:
                    removed["contaminated"][row["category"]] += 1
                    continue
                if split == "sft":
                    sources[source_of(row)] += 1
                    pending_sft.append(row)
                    if len(pending_sft) >= BATCH:
                        flush_sft()
                else:
                    streams.write(split, row)
                    if split in ("preference", "preference_eval"):
                        by_domain[DPO_DOMAINS.get(row["category"], row["category"])] += 1
        flush_sft()
        mixture_report = None
        if mixture is not None and sft_split in streams.handles:
            unmixed = streams.discard(sft_split)  # flushed before it is read back
            mixture_report = _mix(streams, unmixed, mixture, config.seed)
            unmixed.unlink()
            (tmp / MIXTURE_PNG).write_bytes(histogram_png(mixture_report, approx=mixture.tokenizer is None))
            for area in mixture_report.values():
                area["tokens"].pop("lengths")
        configured = {split for area in config.area_configs().values() for split in area.splits}
        for split in SPLIT_ORDER:  # a configured split that kept no rows is written empty, with its schema
            if split in configured and split not in streams.handles:
                (tmp / f"{split}.jsonl").touch()
                streams.counts[split] = 0
                streams.hashes[split] = hashlib.sha256()
        streams.close()
        entries = {}
        for split in SPLIT_ORDER:
            if split in streams.counts:
                entries[split] = {"rows": streams.counts[split], "sha256": streams.hashes[split].hexdigest()}
                _save_split(tmp, split, entries[split]["sha256"])
        filter_report = {step: dict(sorted(c.items())) for step, c in removed.items()}
        filter_report["eval_samples"] = len(tests)
        report = {"areas": {name: s.as_dict() for name, s in areas.items()},
                  "splits": {split: e["rows"] for split, e in entries.items()},
                  "preference_by_domain": dict(sorted(by_domain.items())),
                  "sources": dict(sorted(sources.items(), key=lambda item: (-item[1], item[0]))),
                  "filters": filter_report}
        if mixture_report is not None:
            report["mixture"] = mixture_report
        (tmp / REPORT_JSON).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / REPORT_MD).write_text(_report_md(report), encoding="utf-8")
        manifest = {"builder": "scaled", "config": settings_of(config), "seed": config.seed,
                    "areas": report["areas"], "filters": filter_report, "splits": entries}
        if mixture_report is not None:
            manifest["mixture"] = mixture_report
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def _mix(streams: _Streams, unmixed: Path, mixture, seed: int) -> dict:
    """The mixture's per-area cut over the filtered SFT rows in two passes (ranks, then the kept rows in order),
    holding one small (rank, position) entry per kept row rather than the rows."""
    built: Counter = Counter()
    for row in _jsonl_rows(unmixed):
        built[row["category"]] += 1
    targets = quotas(mixture.weights, mixture.sft_rows) if mixture.sft_rows is not None else {}
    best: dict[str, list] = {}
    for position, row in enumerate(_jsonl_rows(unmixed)):
        area = row["category"]
        target = targets.get(area, built[area])
        heap = best.setdefault(area, [])
        entry = (-int.from_bytes(_rank(seed, row["id"]), "big"), position)  # a max-heap of the smallest ranks
        if len(heap) < target:
            heapq.heappush(heap, entry)
        elif heap and entry > heap[0]:
            heapq.heapreplace(heap, entry)
    keep = {position for heap in best.values() for _, position in heap}
    lengths: dict[str, list[int]] = {}
    for position, row in enumerate(_jsonl_rows(unmixed)):
        if position in keep:
            streams.write("sft", row)
            text = "\n".join(m["content"] for m in row["messages"])
            lengths.setdefault(row["category"], []).append(count_tokens(text, mixture.tokenizer))
    report = {}
    for area in sorted(set(built) | set(mixture.weights)):
        values = sorted(lengths.get(area, []))
        report[area] = {"weight": mixture.weights.get(area), "target": targets.get(area), "built": built[area],
                        "kept": len(values),
                        "tokens": {"mean": round(sum(values) / len(values), 1) if values else 0,
                                   "p50": _percentile(values, 0.5), "p95": _percentile(values, 0.95),
                                   "max": values[-1] if values else 0, "lengths": values}}
    return report


class Progress:
    """One line across every task: queries verified of the total, rows accepted, the top rejection reasons, tokens
    generated and an ETA, read from the chunk stats files the tasks write (so it works for any executor that shares
    the work dir)."""

    def __init__(self, config: DataConfig, engine: EngineConfig, work: WorkDir, enabled: bool = True) -> None:
        self.units, self.work, self.enabled = plan_units(config, engine), work, enabled
        self.total = sum(u.count for u in self.units)  # seed lines stand in for their queries
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self.bar = None
        self.finished: dict[Unit, dict] = {}  # totals of units with a done.json: read once

    @staticmethod
    def _empty() -> dict:
        return {"queries": 0, "rows": 0, "candidates": 0, "passed": 0, "tokens": 0, "failures": Counter(),
                "generate_s": 0.0, "verify_s": 0.0}

    @staticmethod
    def _add(out: dict, chunk: dict) -> None:
        for key in ("queries", "candidates", "passed", "tokens", "generate_s", "verify_s"):
            out[key] += chunk[key]
        out["rows"] += sum(chunk["rows"].values())
        out["failures"].update(chunk["failures"])

    def totals(self) -> dict:
        out = self._empty()
        for unit in self.units:
            if unit in self.finished:
                self._add(out, self.finished[unit])
                continue
            done = self.work.done(unit).is_file()
            mine = self._empty()
            for chunk in unit_stats(self.work, unit):
                self._add(mine, chunk)
            if done:
                self.finished[unit] = {**mine, "rows": Counter({"all": mine["rows"]})}
            self._add(out, {**mine, "rows": {"all": mine["rows"]}})
        return out

    def _loop(self) -> None:
        while not self.stop.wait(PROGRESS_EVERY_S):
            self.render()

    def render(self) -> None:
        totals = self.totals()
        if self.bar is None:
            self.bar = tqdm(total=self.total or None, desc="verified queries", unit="query", file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.n = totals["queries"]
        if self.total and totals["queries"] > self.total:
            self.bar.total = totals["queries"]
        top = ", ".join(f"{r} {n}" for r, n in totals["failures"].most_common(2))
        self.bar.set_postfix_str(f"rows {totals['rows']}, rejected {totals['candidates'] - totals['passed']}"
                                 f"{' (' + top + ')' if top else ''}, tokens {totals['tokens']}", refresh=False)
        self.bar.refresh()

    def __enter__(self) -> "Progress":
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join()
            self.render()
            self.bar.close()


def executors(config: DataConfig, engine: EngineConfig, work: WorkDir):
    """(build job, merge job) on the configured datatrove executor; the merge depends on the build."""
    settings = dataclasses.asdict(config)
    engine_settings = dataclasses.asdict(engine)
    build = [BuildUnits(settings, engine_settings, str(work.root))]
    merge_step = [MergeUnits(settings, engine_settings, str(work.root))]
    if engine.executor == "local":
        unknown = sorted(set(engine.options) - LOCAL_OPTIONS)
        if unknown:
            raise ValueError(f"config key 'engine.options': the local executor takes {sorted(LOCAL_OPTIONS)} "
                             f"(unknown: {unknown})")
        first = LocalPipelineExecutor(build, tasks=engine.tasks, workers=engine.workers,
                                      logging_dir=str(work.logs("build", engine.tasks)), start_method="spawn",
                                      **engine.options)
        second = LocalPipelineExecutor(merge_step, tasks=1, workers=1, logging_dir=str(work.logs("merge", 1)),
                                       depends=first)
        return first, second
    if engine.executor == "slurm":
        options = dict(engine.options)
        missing = [key for key in ("time", "partition") if key not in options]
        if missing:
            raise ValueError(f"config key 'engine.options': the slurm executor needs {missing} (e.g. "
                             '{"time": "12:00:00", "partition": "cpu"}; any other SlurmPipelineExecutor option too)')
        first = SlurmPipelineExecutor(build, tasks=engine.tasks, workers=engine.workers,
                                      logging_dir=str(work.logs("build", engine.tasks)), job_name="qwenpost-data",
                                      **options)
        second = SlurmPipelineExecutor(merge_step, tasks=1, logging_dir=str(work.logs("merge", 1)),
                                       job_name="qwenpost-data-merge", depends=first, **options)
        return first, second
    from datatrove.executor import RayPipelineExecutor  # noqa: PLC0415 (imports ray, installed only by Ray users)
    first = RayPipelineExecutor(build, tasks=engine.tasks, workers=engine.workers,
                                logging_dir=str(work.logs("build", engine.tasks)), **engine.options)
    second = RayPipelineExecutor(merge_step, tasks=1, logging_dir=str(work.logs("merge", 1)), depends=first,
                                 **engine.options)
    return first, second


def work_dir_of(config: DataConfig, engine: EngineConfig) -> WorkDir:
    return WorkDir(engine.work_dir or f"{config.output_dir.rstrip('/')}.work")


def build_scaled(config: DataConfig, progress: bool = True) -> dict:
    """Run the build and merge jobs (resuming any earlier attempt of the same config); returns the report plus
    the run's timings and throughput (`seconds`, `tokens`, `tokens_per_s`, `generate_s`, `verify_s`).

    Slurm/Ray: the jobs are submitted and {"submitted": True} returned. With `engine.options.local_tasks` (several
    machines over one shared work dir, each running its slice of the tasks) a machine whose slice is done while
    others still build returns {"partial": True, "units_left": n}; the same command run once every slice is done
    merges."""
    engine = parse_engine(config.engine)
    work = work_dir_of(config, engine)
    work.claim(settings_of(config))
    start = time.perf_counter()
    build, merge_job = executors(config, engine, work)
    tracker = Progress(config, engine, work, enabled=progress and engine.executor == "local")
    with tracker:
        build.run()
        if engine.executor != "local":  # Slurm/Ray jobs were submitted; the merge job is queued after them
            return {"submitted": True, "work_dir": str(work.root)}
    left = [u for u in tracker.units if not work.done(u).is_file()]
    if left:  # this machine ran its share (engine.options.local_tasks); another still has units to build
        return {"partial": True, "work_dir": str(work.root), "units_left": len(left), "units": len(tracker.units)}
    totals = tracker.totals()
    merge_job.run()
    out = Path(config.output_dir)
    report = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
    seconds = time.perf_counter() - start
    report["run"] = {"seconds": round(seconds, 2), "tokens": totals["tokens"],
                     "tokens_per_s": round(totals["tokens"] / totals["generate_s"], 1) if totals["generate_s"] else 0,
                     "generate_s": round(totals["generate_s"], 2), "verify_s": round(totals["verify_s"], 2),
                     "rows_per_s": round(sum(report["splits"].values()) / seconds, 1) if seconds else 0}
    if not engine.keep_work:
        shutil.rmtree(work.root, ignore_errors=True)
    return report


def dry_run(config: DataConfig) -> str:
    """What a build would do, without doing it: the evaluation and document files exist, seed lines counted, the
    units planned; per area the queries, the candidates to generate and verify, the queries each split gets, and
    the preference queries per DPO domain (pairs are fewer: a pair needs a passing and a failing candidate)."""
    engine = parse_engine(config.engine) if config.engine else EngineConfig()
    filters = parse_filters(config.filters) if config.filters else None
    for path in filters.eval_files if filters else []:
        if not Path(path).is_file():
            raise ValueError(f"config key 'filters.decontaminate.eval_files': file not found: {path}")
    units = plan_units(config, engine)
    lines = [f"dry run: {config.output_dir} with {engine.tasks} task(s) on the {engine.executor} executor, "
             f"{len(units)} units of up to {engine.unit_queries} queries; nothing is generated or written",
             "| area | seed lines | procedural | units | queries | candidates | " + " | ".join(SPLIT_ORDER) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(SPLIT_ORDER)]
    totals: Counter = Counter()
    domains: Counter = Counter()
    for name, area in config.area_configs().items():
        seeds = sum(u.count for u in units if u.area == name and u.kind == "sources")  # seed lines, as planned
        queries = seeds + area.procedural
        share = sum(area.splits.values())
        per_split = {split: round(queries * area.splits.get(split, 0) / share) for split in SPLIT_ORDER}
        mine = sum(1 for u in units if u.area == name)
        lines.append(f"| {name} | {seeds} | {area.procedural} | {mine} | {queries} | {queries * area.k} | "
                     + " | ".join(str(per_split[s]) for s in SPLIT_ORDER) + " |")
        totals.update({"seeds": seeds, "procedural": area.procedural, "units": mine, "queries": queries,
                       "candidates": queries * area.k, **per_split})
        domains[DPO_DOMAINS.get(name, name)] += per_split["preference"] + per_split["preference_eval"]
    lines.append(f"| total | {totals['seeds']} | {totals['procedural']} | {totals['units']} | {totals['queries']} | "
                 f"{totals['candidates']} | " + " | ".join(str(totals[s]) for s in SPLIT_ORDER) + " |")
    lines.append("preference queries per DPO domain: "
                 + ", ".join(f"{domain} {n}" for domain, n in domains.items() if n))
    if config.mixture:
        mixture = parse_mixture(config.mixture, list(config.area_configs()))
        lines.append(f"mixture: SFT cut to {mixture.sft_rows} rows by weight" if mixture.sft_rows else
                     "mixture: per-area weights, no row target")
    return "\n".join(lines)


def summary(config: DataConfig, report: dict) -> str:
    """The lines the CLI prints after a scaled build."""
    run = report["run"]
    lines = [f"data_builders: wrote {config.output_dir} (scaled engine, seed {config.seed}) in {run['seconds']:.1f} s",
             "  rows: " + ", ".join(f"{split} {report['splits'][split]}" for split in SPLIT_ORDER
                                    if split in report["splits"]),
             f"  generated {run['tokens']} tokens ({run['tokens_per_s']} tokens/s while generating); "
             f"generation {run['generate_s']} s, verification {run['verify_s']} s (overlapped); "
             f"{run['rows_per_s']} rows/s"]
    for name in config.area_configs():
        area = report["areas"][name]
        rows = ", ".join(f"{split} {count}" for split, count in area["rows"].items()) or "none"
        lines.append(f"  {name}: {area['queries']} queries, {area['passed']}/{area['candidates']} candidates passed; "
                     f"kept {rows}")
        if "guidance" in area:
            guided = area["guidance"]
            lines.append(f"    reward guidance: chose another passing answer in {guided.get('sft_changed', 0)}/"
                         f"{guided.get('sft', 0)} SFT rows, another hard negative in "
                         f"{guided.get('rejected_changed', 0)}/{guided.get('pairs', 0)} pairs")
    if report["preference_by_domain"]:
        lines.append("  DPO pairs per domain: " + ", ".join(f"{d} {n}" for d, n in
                                                            report["preference_by_domain"].items()))
    removed = {step: sum(v.values()) for step, v in report["filters"].items() if isinstance(v, dict)}
    lines.append("  removed at merge: " + ", ".join(f"{step} {n}" for step, n in removed.items())
                 + f" (against {report['filters']['eval_samples']} evaluation samples)")
    lines.append(f"  report: {Path(config.output_dir) / REPORT_MD}")
    return "\n".join(lines)

