"""Configuration of the data builders: one dataclass, loaded from YAML by TRL's `TrlParser`, overridable on the CLI.

    python -m data_builders --config configs/data/tiny.yaml --seed 3 --sft_size 100

`stagekit.config.parse_config(DataConfig, argv)` reads it, as every stage reads its own: unknown keys are refused
naming the file, and values are checked when the dataclass is built, so a bad YAML or CLI value stops the run
before any work, with the key named.

The flat keys drive the arithmetic builder of the tiny demo. `areas` adds the verified areas (each an
`AreaConfig` subclass, keys checked and named as `areas.<area>.<key>`) and `generator` picks the backend that
writes their candidates:

    areas:
      math: {seed_files: [gsm8k.jsonl], procedural: 200, k: 4, splits: {sft: 0.6, preference: 0.3, rl_queries: 0.1}}
      code: {procedural: 50, languages: [python, javascript]}
    generator: {backend: openai, base_url: "http://127.0.0.1:8000/v1", model: qwen}

`filters` (critic, MinHash dedup, decontamination: data_builders/filters) and `mixture` (per-area weights and the
length report: data_builders/mixture.py) act on the areas' rows. `areas`, `generator`, `filters` and `mixture` are
mappings, so they are set in YAML (argparse cannot take them on the command line).
"""

import dataclasses
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_builders.filters import parse_filters
from data_builders.generators import BACKENDS, HFGenerator, OpenAIGenerator
from data_builders.mixture import parse_mixture

OPS = ("add", "sub", "mul", "div")
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
FLAWS = ("off_by_one", "wrong_operation", "no_final_format", "wrong_step")
SPLITS = ("heldout", "preference_eval", "rl_queries", "preference", "sft")  # drawn in this order: see arithmetic.py


@dataclass
class DataConfig:
    """What to build and where to write it; every split's size is a row count."""

    output_dir: str = "runs/data/tiny"  # the dataset directory: <output_dir>/<split>/ and manifest.json
    seed: int = 0  # the only source of randomness: same config and seed, same bytes
    min_operand: int = 1  # smallest number in a problem
    max_operand: int = 9  # largest number in a problem; single digits are what a tiny CPU model learns
    ops: list[str] = field(default_factory=lambda: ["add", "sub", "mul"])  # operations to draw from: add sub mul div
    two_step_fraction: float = 0.0  # share of problems with two steps (e.g. buy some, then give some away)
    flaws: list[str] = field(default_factory=lambda: list(FLAWS))  # kinds of flawed candidates to generate
    sft_size: int = 6000  # SFT rows: problems with a verified solution
    preference_size: int = 1024  # preference pairs for DPO and the reward model
    preference_eval_size: int = 128  # held-out preference pairs (reward accuracy)
    rl_queries_size: int = 512  # GRPO queries with a math reference
    heldout_size: int = 64  # held-out queries for evaluation
    jsonl: bool = False  # also write <output_dir>/<split>.jsonl
    # verified areas built by rejection sampling, e.g. {math: {procedural: 200, k: 4}}; absent areas are not built
    areas: dict | str | None = field(default_factory=dict)
    # who writes the candidates: {backend: procedural} (offline, default), {backend: hf, model_path: ...} or
    # {backend: openai, base_url: http://host:8000/v1, model: ...}
    generator: dict | str | None = field(default_factory=lambda: {"backend": "procedural"})
    # response filtering and decontamination of the area rows (data_builders.filters), e.g.
    # {critic: {backend: reward, url: ...}, dedup: {threshold: 0.85}, decontaminate: {eval_files: [...]}}; {}: none
    filters: dict | str | None = field(default_factory=dict)
    # the SFT mixture (data_builders.mixture): {weights: {area: w}, sft_rows: N, tokenizer: null}; {}: no mixture
    mixture: dict | str | None = field(default_factory=dict)
    # the scaled engine (data_builders.engine: datatrove tasks, shards written as verified, resumable), e.g.
    # {tasks: 8, workers: 2}; {}: build in memory. Not part of the manifest: the task count does not change the data
    engine: dict | str | None = field(default_factory=dict)
    # reward-guided rejection sampling (the report's math data): {url: http://127.0.0.1:8765 (or a list), areas:
    # [math], timeout_s: 60}: passing candidates are ranked by the reward service; {}: the first passing one is kept
    guidance: dict | str | None = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in MAPPING_KEYS:  # a mapping given on the command line (`--generator '{"backend": ...}'`) is JSON
            value = getattr(self, key)
            if value is None:  # `key: null` in a YAML file: the default
                setattr(self, key, {"backend": "procedural"} if key == "generator" else {})
            elif isinstance(value, str):
                try:
                    setattr(self, key, json.loads(value))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{key}: expected a JSON object on the command line, got {value!r} ({exc})")
            _require(isinstance(getattr(self, key), dict), key, "a mapping", getattr(self, key))
        _require(isinstance(self.output_dir, str) and self.output_dir.strip() != "", "output_dir",
                 "a non-empty path", self.output_dir)
        for key in ("seed", "min_operand", "max_operand", *(f"{split}_size" for split in SPLITS)):
            value = getattr(self, key)
            _require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
            _require(key == "seed" or value >= 0, key, "a number >= 0", value)
        _require(self.max_operand >= self.min_operand, "max_operand",
                 f"a number >= min_operand ({self.min_operand})", self.max_operand)
        _require(self.max_operand <= 10**6, "max_operand", "at most 1000000", self.max_operand)
        _require_choices(self.ops, "ops", OPS, allow_empty=False)
        _require_choices(self.flaws, "flaws", FLAWS, allow_empty=self.preference_size + self.preference_eval_size == 0)
        fraction = self.two_step_fraction
        _require(isinstance(fraction, int | float) and not isinstance(fraction, bool) and 0 <= fraction <= 1,
                 "two_step_fraction", "a number between 0 and 1", fraction)
        self.two_step_fraction = float(fraction)
        _require(isinstance(self.jsonl, bool), "jsonl", "true or false", self.jsonl)
        areas = self.area_configs()
        check_generator(self.generator)
        if self.filters or self.mixture:
            _require(bool(areas), "areas", "at least one area when filters or mixture are set", self.areas)
        if self.filters:
            parse_filters(self.filters)
        if self.mixture:
            parse_mixture(self.mixture, list(areas))
        if self.engine:
            parse_engine(self.engine)
            sizes = {key: value for key, value in self.split_sizes().items() if value}
            _require(not sizes, "engine", "a config whose arithmetic splits are 0 (the engine builds `areas`; set "
                     + ", ".join(f"{split}_size" for split in sizes) + " to 0)", self.engine)
            _require(bool(areas), "areas", "at least one area with engine set", self.areas)
        if self.guidance:
            _check_guidance(self.guidance, list(areas))
        _refuse_eval_seeds(areas, parse_filters(self.filters).eval_files if self.filters else [])
        authored = areas.get("instruction_code")
        if isinstance(authored, InstructionCodeAreaConfig) and authored.author == "generator":
            _require(self.generator.get("backend", "procedural") != "procedural", "generator.backend",
                     "a model backend (hf or openai) with areas.instruction_code.author: generator",
                     self.generator.get("backend", "procedural"))

    def area_configs(self) -> dict[str, "AreaConfig"]:
        """The `areas` mapping as checked dataclasses, in the order areas are built."""
        _require(isinstance(self.areas, dict), "areas", "a mapping of area name to settings", self.areas)
        unknown = sorted(set(self.areas) - set(AREAS))
        _require(not unknown, "areas", f"areas from {list(AREAS)} (unknown: {unknown})", sorted(self.areas))
        return {name: parse_area(name, self.areas[name]) for name in AREAS if name in self.areas}

    def split_sizes(self) -> dict[str, int]:
        """Rows per split, in the order splits are drawn."""
        return {split: getattr(self, f"{split}_size") for split in SPLITS}


MAPPING_KEYS = ("areas", "generator", "filters", "mixture", "engine", "guidance")
EXECUTORS = ("local", "slurm", "ray")
# evaluation sets by their standard file names (GSM8K test, MATH test, HumanEval, MBPP test, IFEval): never seeds
EVAL_SET_NAMES = re.compile(r"humaneval|ifeval|(gsm8k|math|mbpp)[^/]*test", re.IGNORECASE)


@dataclass
class EngineConfig:
    """How a scaled build runs (data_builders.engine); none of it changes the data built."""

    executor: str = "local"  # datatrove executor: local (one machine), slurm or ray
    tasks: int = 1  # shards of the work; unit i goes to task i % tasks
    workers: int = 1  # tasks run at once (local executor; slurm: array concurrency)
    unit_queries: int = 1000  # queries per unit: seed lines per slice, procedural queries per block
    chunk: int = 64  # queries generated and verified together: the grain of resume and of progress
    prefetch: int = 2  # generated chunks waiting for the verifier at most (backpressure on the generator)
    work_dir: str | None = None  # shards, chunk stats and datatrove logs; None: <output_dir>.work
    keep_work: bool = False  # keep the work dir after the merge (it is removed by default)
    options: dict = field(default_factory=dict)  # passed to the Slurm/Ray executor (partition, time, cpus_per_task)


def parse_engine(values: object) -> EngineConfig:
    """The `engine` section as a checked EngineConfig; keys and values named as engine.<key>."""
    _require(isinstance(values, dict), "engine", "a mapping of settings", values)
    known = {f.name for f in dataclasses.fields(EngineConfig)}
    unknown = sorted(set(values) - known)
    _require(not unknown, "engine", f"keys from {sorted(known)} (unknown: {unknown})", sorted(values))
    engine = EngineConfig(**values)
    _require(engine.executor in EXECUTORS, "engine.executor", f"one of {list(EXECUTORS)}", engine.executor)
    for key, low in (("tasks", 1), ("workers", 1), ("unit_queries", 1), ("chunk", 1), ("prefetch", 1)):
        value = getattr(engine, key)
        _require(isinstance(value, int) and not isinstance(value, bool) and value >= low, f"engine.{key}",
                 f"a whole number >= {low}", value)
    _require(engine.work_dir is None or (isinstance(engine.work_dir, str) and engine.work_dir.strip() != ""),
             "engine.work_dir", "a directory path or null", engine.work_dir)
    _require(isinstance(engine.keep_work, bool), "engine.keep_work", "true or false", engine.keep_work)
    _require(isinstance(engine.options, dict), "engine.options", "a mapping of executor options", engine.options)
    return engine


def _check_guidance(values: dict, areas: list[str]) -> None:
    known = {"url", "areas", "timeout_s"}
    unknown = sorted(set(values) - known)
    _require(not unknown, "guidance", f"keys from {sorted(known)} (unknown: {unknown})", sorted(values))
    url = values.get("url")
    urls = url if isinstance(url, list) else [url]
    _require(bool(urls) and all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls),
             "guidance.url", "the reward service's URL (or a list of them)", url)
    chosen = values.get("areas")
    _require(isinstance(chosen, list) and chosen and all(a in areas for a in chosen), "guidance.areas",
             f"a list of configured areas {areas}", chosen)
    timeout = values.get("timeout_s", 60)
    _require(isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0,
             "guidance.timeout_s", "a number of seconds > 0", timeout)


def _refuse_eval_seeds(areas: dict, eval_files: list[str]) -> None:
    """An evaluation set is a decontamination target and never a training seed: refuse a seed file that is also
    in `filters.decontaminate.eval_files`, or that carries an evaluation set's standard name."""
    targets = {Path(path).resolve() for path in eval_files}
    for name, area in areas.items():
        for path in area.seed_files:
            if Path(path).resolve() in targets:
                raise ValueError(f"config key 'areas.{name}.seed_files': {path} is also a decontamination target "
                                 "(filters.decontaminate.eval_files); an evaluation set is never a training seed")
            if EVAL_SET_NAMES.search(Path(path).name):
                raise ValueError(f"config key 'areas.{name}.seed_files': {path} is named like an evaluation set "
                                 "(GSM8K/MATH/MBPP test, HumanEval, IFEval); evaluation sets are never training "
                                 "seeds: list it under filters.decontaminate.eval_files instead")


@dataclass
class AreaConfig:
    """Settings every verified area shares: where queries come from, how many candidates, how splits are cut."""

    seed_files: list[str] = field(default_factory=list)  # local JSONL seeds in the area's standard formats
    max_seed_queries: int | None = None  # use at most this many seed queries (in file order); None: all
    procedural: int = 0  # offline procedural queries added to the seeds
    k: int = 4  # candidates sampled and verified per query (rejection sampling)
    splits: dict = field(default_factory=lambda: dict(AREA_SPLITS))  # share of the queries in each split


@dataclass
class MathAreaConfig(AreaConfig):
    """Math chain-of-thought: GSM8K/MATH seeds plus procedural arithmetic stories (arithmetic.py's generator)."""

    min_operand: int = 2  # smallest number in a procedural problem
    max_operand: int = 99  # largest number in a procedural problem
    ops: list[str] = field(default_factory=lambda: list(OPS))  # operations drawn from
    two_step_fraction: float = 0.5  # share of two-step procedural problems
    # appended to each question (Qwen2.5-Math's chain-of-thought prompt); "" asks the bare question, as a model
    # trained on bare questions (the tiny SFT checkpoint) expects
    instruction: str = MATH_INSTRUCTION


@dataclass
class CodeAreaConfig(AreaConfig):
    """Code: MBPP/HumanEval seeds plus procedural function tasks, verified by running tests in the sandbox."""

    # languages of procedural tasks, any of CODE_LANGUAGES (20; toolchains: `make sandbox-languages`)
    languages: list[str] = field(default_factory=lambda: list(DEFAULT_CODE_LANGUAGES))
    workers: int | None = None  # sandbox processes run at once; None: the sandbox's default


@dataclass
class InstructionAreaConfig(AreaConfig):
    """Instruction following: a base task plus 1..max_constraints constraints from the instruction verifier."""

    max_constraints: int = 3  # constraints per procedural prompt (1..3 in the issue)


@dataclass
class InstructionCodeAreaConfig(AreaConfig):
    """The report's code-verified instructions: instruction + check function + its unit tests, run in the sandbox."""

    flawed_check_fraction: float = 0.25  # share of check functions written with a bug their own tests must catch
    # who writes instruction, check function and tests: "procedural" (the offline task maker, `procedural` tasks) or
    # "generator" (the model backend also writes `author_prompts` tasks, in the format of builders/instruction_code.py)
    author: str = "procedural"
    author_prompts: int = 0  # tasks asked of the generator with `author: generator`
    topics: list[str] = field(default_factory=list)  # plain instruction ideas for author prompts; empty: built-in


@dataclass
class LongAreaConfig(AreaConfig):
    """Long generation by back-translation: a long document is the response, the generator writes its instruction."""

    documents: list[str] = field(default_factory=list)  # long texts: .txt (one document), .jsonl or .parquet files
    text_field: str = "text"  # the document column of JSONL/parquet files
    min_document_words: int = 150  # shorter documents are not long-generation material (ours)
    max_documents: int | None = None  # use at most this many documents from `documents` (in file order)
    min_sections: int = 3  # procedural reports: sections per report (ours)
    max_sections: int = 8
    length_tolerance: float = 0.2  # ours: a response fits "about N words" when within N x (1 +- tolerance)
    max_response_tokens: int = 8192  # RECIPE.md: outputs up to 8,192 tokens
    tokenizer: str | None = None  # local HF tokenizer for the token limit; None: verifiers.tokens' approximation


@dataclass
class StructuredAreaConfig(AreaConfig):
    """Structured data: tabular QA, fact verification, error correction, structural understanding, JSON output."""

    tasks: list[str] = field(default_factory=lambda: list(STRUCTURED_TASKS))  # task kinds drawn in turn
    min_rows: int = 4  # rows per generated table
    max_rows: int = 9


@dataclass
class LogicAreaConfig(AreaConfig):
    """Logical reasoning: solver-checked deductive, inductive, analogical, causal and statistical problems."""

    kinds: list[str] = field(default_factory=lambda: list(LOGIC_KINDS))  # reasoning kinds drawn in turn
    forms: list[str] = field(default_factory=lambda: list(LOGIC_FORMS))  # question forms drawn in turn
    refine_rounds: int = 1  # model backends: re-ask a failed candidate with the verifier's feedback this many times


@dataclass
class CrossLingualAreaConfig(AreaConfig):
    """Cross-lingual transfer: tasks with language-independent answers, asked in other languages."""

    languages: list[str] = field(default_factory=lambda: list(CROSS_LANGUAGES))  # target languages (ISO 639-1)


@dataclass
class SystemAreaConfig(AreaConfig):
    """Robust system instructions: system prompts of persona, tone, format and constraint parts, format verified."""

    max_constraints: int = 2  # format constraints per system prompt (1..3)


@dataclass
class ToolCallingAreaConfig(AreaConfig):
    """Tool calling in Qwen2.5's format: tasks over a small tool library, tool results run in the sandbox."""

    kinds: list[str] = field(default_factory=lambda: list(TOOL_KINDS))  # task kinds drawn in turn
    answer_step_fraction: float = 0.5  # share of queries at the final-answer step (the rest at a call step)
    distractors: int = 2  # tools shown beside the ones the task needs
    tool_role: str = "tool"  # tool results as "tool" messages (Qwen2.5's format), or one user turn of <tool_response>
    workers: int | None = None  # sandbox processes run at once; None: the sandbox's default


AREAS = {"math": MathAreaConfig, "code": CodeAreaConfig, "instruction": InstructionAreaConfig,
         "instruction_code": InstructionCodeAreaConfig, "long": LongAreaConfig, "structured": StructuredAreaConfig,
         "logic": LogicAreaConfig, "cross_lingual": CrossLingualAreaConfig, "system": SystemAreaConfig,
         "tool_calling": ToolCallingAreaConfig}
TOOL_KINDS = ("single", "parallel", "multi_step")
TOOL_ROLES = ("user", "tool")
STRUCTURED_TASKS = ("table_qa", "fact_verification", "error_correction", "structure", "json_output")
LOGIC_KINDS = ("deductive", "inductive", "analogical", "causal", "statistical")
LOGIC_FORMS = ("multiple_choice", "true_false", "open")
CROSS_LANGUAGES = ("fr", "es", "de", "sw", "id")
AREA_SPLITS = {"sft": 0.6, "preference": 0.3, "rl_queries": 0.1}  # ours: the report gives no split of queries
# languages of code tasks: the sandbox's 20, each with a test translator (data_builders/builders/multipl_e.py)
CODE_LANGUAGES = ("python", "javascript", "typescript", "c", "cpp", "java", "csharp", "go", "rust", "php", "ruby",
                  "perl", "lua", "r", "scala", "kotlin", "bash", "haskell", "ocaml", "racket")
DEFAULT_CODE_LANGUAGES = ("python", "javascript", "cpp")  # procedural languages when `languages` is not set
AUTHORS = ("procedural", "generator")  # who writes code-verified instruction tasks
_AREA_INTS = {"procedural": 0, "k": 1, "max_seed_queries": 0, "min_operand": 0, "max_operand": 0,
              "max_constraints": 1, "workers": 1, "author_prompts": 0, "min_document_words": 1, "max_documents": 0,
              "min_sections": 1, "max_sections": 1, "max_response_tokens": 1, "min_rows": 2, "max_rows": 2,
              "refine_rounds": 0, "distractors": 0}  # integer area keys and their smallest value
_OPTIONAL_INTS = ("max_seed_queries", "workers", "max_documents")  # may be null


def parse_area(name: str, values: object) -> AreaConfig:
    """The dataclass of area `name` from its YAML mapping; unknown keys and bad values named as areas.<name>.<key>."""
    cls = AREAS[name]
    where = f"areas.{name}"
    _require(isinstance(values, dict), where, "a mapping of settings", values)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    _require(not unknown, where, f"keys from {sorted(known)} (unknown: {unknown})", sorted(values))
    area = cls(**values)
    _require(isinstance(area.seed_files, list) and all(isinstance(p, str) and p for p in area.seed_files),
             f"{where}.seed_files", "a list of file paths", area.seed_files)
    for key, low in _AREA_INTS.items():
        value = getattr(area, key, None)
        if key not in known or (value is None and key in _OPTIONAL_INTS):
            continue
        _require(isinstance(value, int) and not isinstance(value, bool) and value >= low, f"{where}.{key}",
                 f"a whole number >= {low}", value)
    splits = area.splits
    _require(isinstance(splits, dict) and splits and set(splits) <= set(SPLITS), f"{where}.splits",
             f"a mapping from split names {list(SPLITS)} to shares", splits)
    for split, share in splits.items():
        _require(isinstance(share, int | float) and not isinstance(share, bool) and share >= 0,
                 f"{where}.splits.{split}", "a share >= 0", share)
    _require(sum(splits.values()) > 0, f"{where}.splits", "shares that add up to more than 0", splits)
    if isinstance(area, MathAreaConfig):
        _require(area.max_operand >= area.min_operand, f"{where}.max_operand", "a number >= min_operand",
                 area.max_operand)
        _require_choices(area.ops, f"{where}.ops", OPS, allow_empty=False)
        _require(isinstance(area.two_step_fraction, int | float) and 0 <= area.two_step_fraction <= 1,
                 f"{where}.two_step_fraction", "a number between 0 and 1", area.two_step_fraction)
        _require(isinstance(area.instruction, str), f"{where}.instruction", "a string (\"\" for none)",
                 area.instruction)
    if isinstance(area, CodeAreaConfig):
        _require_choices(area.languages, f"{where}.languages", CODE_LANGUAGES, allow_empty=area.procedural == 0)
    if isinstance(area, InstructionAreaConfig):
        _require(1 <= area.max_constraints <= 3, f"{where}.max_constraints", "1, 2 or 3", area.max_constraints)
    if isinstance(area, LongAreaConfig):
        _require(isinstance(area.documents, list) and all(isinstance(p, str) and p for p in area.documents),
                 f"{where}.documents", "a list of file paths (.txt, .jsonl, .parquet)", area.documents)
        _require(area.max_sections >= area.min_sections, f"{where}.max_sections", "a number >= min_sections",
                 area.max_sections)
        _require(isinstance(area.length_tolerance, int | float) and 0 < area.length_tolerance < 1,
                 f"{where}.length_tolerance", "a number between 0 and 1", area.length_tolerance)
        _require(area.tokenizer is None or (isinstance(area.tokenizer, str) and area.tokenizer), f"{where}.tokenizer",
                 "a local tokenizer directory or null", area.tokenizer)
    if isinstance(area, StructuredAreaConfig):
        _require_choices(area.tasks, f"{where}.tasks", STRUCTURED_TASKS, allow_empty=False)
        _require(area.max_rows >= area.min_rows, f"{where}.max_rows", "a number >= min_rows", area.max_rows)
    if isinstance(area, LogicAreaConfig):
        _require_choices(area.kinds, f"{where}.kinds", LOGIC_KINDS, allow_empty=False)
        _require_choices(area.forms, f"{where}.forms", LOGIC_FORMS, allow_empty=False)
    if isinstance(area, CrossLingualAreaConfig):
        _require_choices(area.languages, f"{where}.languages", CROSS_LANGUAGES, allow_empty=False)
    if isinstance(area, SystemAreaConfig):
        _require(1 <= area.max_constraints <= 3, f"{where}.max_constraints", "1, 2 or 3", area.max_constraints)
    if isinstance(area, ToolCallingAreaConfig):
        _require_choices(area.kinds, f"{where}.kinds", TOOL_KINDS, allow_empty=False)
        fraction = area.answer_step_fraction
        _require(isinstance(fraction, int | float) and not isinstance(fraction, bool) and 0 <= fraction <= 1,
                 f"{where}.answer_step_fraction", "a number between 0 and 1", fraction)
        _require(area.tool_role in TOOL_ROLES, f"{where}.tool_role", f"one of {list(TOOL_ROLES)}", area.tool_role)
    if isinstance(area, InstructionCodeAreaConfig):
        _require(isinstance(area.flawed_check_fraction, int | float) and 0 <= area.flawed_check_fraction <= 1,
                 f"{where}.flawed_check_fraction", "a number between 0 and 1", area.flawed_check_fraction)
        _require(area.author in AUTHORS, f"{where}.author", f"one of {list(AUTHORS)}", area.author)
        _require(isinstance(area.topics, list) and all(isinstance(t, str) and t.strip() for t in area.topics),
                 f"{where}.topics", "a list of non-empty instruction ideas", area.topics)
        if area.author == "generator":
            _require(area.author_prompts >= 1, f"{where}.author_prompts", "a whole number >= 1 with author: generator",
                     area.author_prompts)
        else:
            _require(area.author_prompts == 0 and not area.topics, f"{where}.author",
                     "'generator' when author_prompts or topics are set", area.author)
    return area


def check_generator(settings: object) -> None:
    """Refuse a `generator` section naming an unknown backend or options its backend does not take."""
    _require(isinstance(settings, dict), "generator", "a mapping with a 'backend' key", settings)
    backend = settings.get("backend", "procedural")
    _require(backend in BACKENDS, "generator.backend", f"one of {list(BACKENDS)}", backend)
    if backend == "procedural":
        allowed: set[str] = set()
    elif backend == "hf":
        allowed = set(inspect.signature(HFGenerator).parameters)
    else:
        allowed = set(inspect.signature(OpenAIGenerator).parameters)
    unknown = sorted(set(settings) - allowed - {"backend"})
    _require(not unknown, "generator", f"options of the {backend} backend {sorted(allowed)} (unknown: {unknown})",
             settings)
    for required in {"hf": ["model_path"], "openai": ["base_url", "model"]}.get(backend, []):
        _require(required in settings, f"generator.{required}", f"a value for the {backend} backend", None)


def _require(ok: bool, key: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"config key {key!r}: expected {expected}, got {value!r}")


def _require_choices(values: object, key: str, choices: tuple[str, ...], allow_empty: bool) -> None:
    _require(isinstance(values, list) and all(isinstance(v, str) for v in values), key, "a list of names", values)
    unknown = [v for v in values if v not in choices]
    _require(not unknown, key, f"names from {list(choices)} (unknown: {unknown})", values)
    _require(len(set(values)) == len(values), key, "names without repeats", values)
    _require(allow_empty or bool(values), key, f"at least one of {list(choices)}", values)
