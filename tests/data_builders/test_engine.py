"""The scaled engine (data_builders/engine.py): datatrove tasks, chunk shards, resume, merge, dry run, refusals."""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datatrove.executor import SlurmPipelineExecutor

from data_builders.__main__ import main
from data_builders.config import DataConfig, parse_engine
from data_builders.engine import Unit, WorkDir, build_scaled, executors, plan_units, run_unit
from data_builders.generators import ProceduralGenerator, make_generator
from data_builders.mixture import apply_mixture, parse_mixture

REPO = Path(__file__).resolve().parents[2]
ZERO = {f"{split}_size": 0 for split in ("sft", "preference", "preference_eval", "rl_queries", "heldout")}
AREAS = {
    "math": {"procedural": 240, "k": 4, "max_operand": 99,
             "splits": {"sft": 0.6, "preference": 0.25, "preference_eval": 0.05, "rl_queries": 0.1}},
    "logic": {"procedural": 60, "k": 4},
    "instruction": {"procedural": 50, "k": 3},
}


def config_file(tmp_path: Path, name: str, engine: dict, areas: dict = AREAS, **extra) -> Path:
    values = {"output_dir": str(tmp_path / name), "seed": 0, **ZERO, "areas": areas, "engine": engine} | extra
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.e2e  # two datatrove jobs, spawned worker processes
def test_one_and_four_tasks_write_byte_identical_splits(tmp_path, capsys):
    one = config_file(tmp_path, "one", {"tasks": 1, "unit_queries": 64, "chunk": 16})
    four = config_file(tmp_path, "four", {"tasks": 4, "workers": 2, "unit_queries": 64, "chunk": 16})
    assert main(["--config", str(one)]) == 0
    assert main(["--config", str(four)]) == 0
    a, b = files(tmp_path / "one"), files(tmp_path / "four")
    assert sorted(a) == sorted(b)
    assert {"sft.jsonl", "preference.jsonl", "preference_eval.jsonl", "rl_queries.jsonl", "manifest.json",
            "report.json", "report.md", "sft/dataset_info.json"} <= set(a)
    different = [name for name in a if a[name] != b[name]]
    assert different == []
    report = json.loads(a["report.json"])
    assert sum(report["splits"].values()) > 200 and report["areas"]["math"]["queries"] == 240
    domains = report["preference_by_domain"]
    assert domains["mathematics"] > 0 and domains["logical reasoning"] > 0
    assert not (tmp_path / "one.work").exists() and not (tmp_path / "four.work").exists()  # removed after the merge
    out = capsys.readouterr().out
    assert "DPO pairs per domain: " in out and "tokens/s" in out


def _chunk_marks(work: Path) -> int:
    return len(list(work.glob("units/*/*/*.stats.json")))


@pytest.mark.e2e  # a build killed with SIGKILL, then resumed by the same command
def test_a_build_killed_mid_way_resumes_to_the_uninterrupted_bytes(tmp_path):
    areas = {"math": {**AREAS["math"], "procedural": 1200}, "logic": {"procedural": 200, "k": 4}}
    engine = {"tasks": 2, "unit_queries": 200, "chunk": 16}
    whole = config_file(tmp_path, "whole", engine, areas)
    assert main(["--config", str(whole)]) == 0
    killed = config_file(tmp_path, "killed", engine, areas)
    work = tmp_path / "killed.work"
    command = [sys.executable, "-m", "data_builders", "--config", str(killed)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    while _chunk_marks(work) < 20 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = _chunk_marks(work)
    total_chunks = sum(-(-q // 16) for q in [200] * 7)  # 1400 queries in units of 200, chunks of 16
    assert 20 <= done_before < total_chunks, "the kill must land mid-build"
    assert not (tmp_path / "killed").exists()  # nothing half-written where the output goes
    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert files(tmp_path / "killed") == files(tmp_path / "whole")


def test_a_chunk_already_written_is_not_generated_again(tmp_path):
    config = DataConfig(output_dir=str(tmp_path / "out"), **ZERO, areas={"math": {"procedural": 40, "k": 2}})
    engine = parse_engine({"chunk": 16})
    (unit,) = plan_units(config, engine)
    work = WorkDir(tmp_path / "work")

    class Counting:
        name = "counting"

        def __init__(self):
            self.inner, self.calls = ProceduralGenerator(), []

        def generate(self, queries, k):
            self.calls.append(len(queries))
            return self.inner.generate(queries, k)

    first = Counting()
    run_unit(config, engine, unit, work, first)
    assert sum(first.calls) == 40 and len(first.calls) == 3  # chunks of 16, 16, 8
    before = work.chunk_rows(unit, 1).read_bytes()
    work.done(unit).unlink()
    work.chunk_stats(unit, 1).unlink()  # as if killed after chunk 0 and 2 were written, before chunk 1's mark
    again = Counting()
    run_unit(config, engine, unit, work, again)
    assert again.calls == [16]  # only the unmarked chunk is redone
    assert work.chunk_rows(unit, 1).read_bytes() == before and work.done(unit).is_file()


def test_units_depend_only_on_the_config(tmp_path):
    config = DataConfig(output_dir=str(tmp_path / "out"), **ZERO,
                        areas={"math": {"procedural": 250, "k": 2}, "logic": {"procedural": 90, "k": 2}})
    units = plan_units(config, parse_engine({"unit_queries": 100, "tasks": 7}))
    assert units == [Unit("math", "procedural", 0, block=0, count=100),
                     Unit("math", "procedural", 1, block=1, count=100),
                     Unit("math", "procedural", 2, block=2, count=50),
                     Unit("logic", "procedural", 0, block=0, count=90)]
    assert units == plan_units(config, parse_engine({"unit_queries": 100, "tasks": 1}))


def test_seed_files_are_cut_into_slices_that_cover_every_line(tmp_path):
    seeds = tmp_path / "gsm8k_train.jsonl"
    seeds.write_text("".join(json.dumps({"question": f"Sam has {i} apples and eats 1. How many are left?",
                                         "answer": f"{i} - 1 = {i - 1}\n#### {i - 1}"}) + "\n" for i in range(2, 27)))
    config = DataConfig(output_dir=str(tmp_path / "out"), **ZERO,
                        areas={"math": {"seed_files": [str(seeds)], "k": 8,  # k >= pool: always a correct one
                                        "splits": {"sft": 1.0}}})
    engine = parse_engine({"unit_queries": 10, "chunk": 4})
    units = plan_units(config, engine)
    assert [(u.kind, u.start, u.stop) for u in units] == [("sources", 0, 10), ("sources", 10, 20),
                                                          ("sources", 20, None)]
    work = WorkDir(tmp_path / "work")
    for unit in units:
        run_unit(config, engine, unit, work, ProceduralGenerator())
    rows = [json.loads(line)["row"] for unit in units for c in range(3)
            if work.chunk_rows(unit, c).is_file() for line in work.chunk_rows(unit, c).read_text().splitlines()]
    assert sorted(int(r["source"].rsplit(":", 1)[1]) for r in rows) == list(range(1, 26))


def test_two_machines_split_the_tasks_and_the_last_one_merges(tmp_path, capsys):
    """Datatrove's local_tasks/local_rank_offset: each "machine" runs its slice of the 2 tasks over one work dir;
    the first finds units left and does not merge; the second completes the build, then merges."""
    areas = {"math": {"procedural": 60, "k": 2}, "logic": {"procedural": 40, "k": 2}}
    machine = [config_file(tmp_path, f"machine{rank}", {"tasks": 2, "unit_queries": 30, "chunk": 16,
                                                       "options": {"local_tasks": 1, "local_rank_offset": rank}},
                           areas, output_dir=str(tmp_path / "out")) for rank in (0, 1)]
    assert main(["--config", str(machine[0])]) == 0
    assert "2 of 4 units are still being built elsewhere" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    assert main(["--config", str(machine[1])]) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["areas"]["math"]["queries"] == 60
    whole = config_file(tmp_path, "whole", {"tasks": 2, "unit_queries": 30, "chunk": 16}, areas)
    assert main(["--config", str(whole)]) == 0
    assert files(tmp_path / "out") == files(tmp_path / "whole")


def test_the_slurm_jobs_are_built_with_the_options_and_the_merge_depends_on_the_build(tmp_path):
    """No Slurm here: the executors are constructed (not submitted), which checks the wiring against datatrove's
    signature; missing required options are named."""
    config = DataConfig(output_dir=str(tmp_path / "out"), **ZERO, areas={"math": {"procedural": 8}})
    engine = parse_engine({"executor": "slurm", "tasks": 16, "workers": 4,
                           "options": {"time": "01:00:00", "partition": "cpu", "cpus_per_task": 2}})
    build, merge_job = executors(config, engine, WorkDir(tmp_path / "work"))
    assert isinstance(build, SlurmPipelineExecutor) and build.tasks == 16 and build.workers == 4
    assert build.partition == "cpu" and build.cpus_per_task == 2 and merge_job.tasks == 1
    assert merge_job.depends is build
    with pytest.raises(ValueError, match=r"engine.options.*needs \['time'\]"):
        executors(config, parse_engine({"executor": "slurm", "options": {"partition": "cpu"}}),
                  WorkDir(tmp_path / "work"))
    with pytest.raises(ValueError, match=r"local executor takes.*unknown: \['partition'\]"):
        executors(config, parse_engine({"options": {"partition": "cpu"}}), WorkDir(tmp_path / "work"))


def test_a_work_dir_of_another_config_is_refused(tmp_path, capsys):
    first = config_file(tmp_path, "out", {"keep_work": True, "chunk": 16},
                        {"math": {"procedural": 30, "k": 2}})
    assert main(["--config", str(first)]) == 0
    assert (tmp_path / "out.work" / "config.json").is_file()
    assert main(["--config", str(first), "--seed", "1"]) == 2
    assert "holds an unfinished build of a different config" in capsys.readouterr().err


@pytest.mark.parametrize(("engine", "message"), [
    ({"tasks": 0}, "engine.tasks"),
    ({"executor": "spark"}, "engine.executor"),
    ({"chunks": 3}, r"engine.*unknown: \['chunks'\]"),
])
def test_bad_engine_settings_are_named(tmp_path, capsys, engine, message):
    path = config_file(tmp_path, "out", engine, {"math": {"procedural": 4}})
    assert main(["--config", str(path)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_the_engine_needs_the_arithmetic_sizes_at_zero(tmp_path, capsys):
    path = config_file(tmp_path, "out", {"tasks": 2}, {"math": {"procedural": 4}}, sft_size=10)
    assert main(["--config", str(path)]) == 2
    assert "set sft_size to 0" in capsys.readouterr().err


def test_an_evaluation_set_is_refused_as_a_seed(tmp_path, capsys):
    eval_file = tmp_path / "my_eval.jsonl"
    eval_file.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "#### 4"}) + "\n")
    areas = {"math": {"seed_files": [str(eval_file)], "k": 2}}
    path = config_file(tmp_path, "out", {}, areas, filters={"decontaminate": {"eval_files": [str(eval_file)]}})
    assert main(["--config", str(path)]) == 2
    assert "areas.math.seed_files" in (err := capsys.readouterr().err) and "also a decontamination target" in err
    named = tmp_path / "HumanEval.jsonl"
    named.write_text("")
    path = config_file(tmp_path, "out2", {}, {"code": {"seed_files": [str(named)], "k": 2}})
    assert main(["--config", str(path)]) == 2
    assert "named like an evaluation set" in capsys.readouterr().err


def _seed_lines(kind: str) -> str:
    rows = {"gsm8k": {"question": "Ann has 3 pens and buys 2. How many?", "answer": "3 + 2 = 5\n#### 5"},
            "math": {"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$."},
            "mbpp": {"text": "Write a function add(a, b).", "code": "def add(a, b):\n    return a + b",
                     "test_list": ["assert add(1, 2) == 3"]},
            "ifeval": {"prompt": "Write a haiku.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}}
    return "".join(json.dumps(rows[kind]) + "\n" for _ in range(3))


def test_full_config_parses_and_dry_runs(tmp_path, monkeypatch, capsys):
    """configs/data/full.yaml with small stand-ins at its local paths: parsed, planned, nothing generated."""
    full = yaml.safe_load((REPO / "configs/data/full.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for area in full["areas"].values():
        for path in area.get("seed_files", []):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            kinds = {"gsm8k": "gsm8k", "math": "math", "mbpp": "mbpp", "code": "mbpp", "if_": "ifeval"}
            kind = next(kind for part, kind in kinds.items() if part in Path(path).name)
            Path(path).write_text(_seed_lines(kind))
        for path in area.get("documents", []):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"text": ["word " * 300]}).to_parquet(path)
    for path in full["filters"]["decontaminate"]["eval_files"]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        data = _seed_lines("gsm8k").encode()
        Path(path).write_bytes(gzip.compress(data) if path.endswith(".gz") else data)
    assert main(["--config", str(REPO / "configs/data/full.yaml"), "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "nothing is generated or written" in out and not Path(full["output_dir"]).exists()
    config = DataConfig(**full)
    assert config.generator["backend"] == "openai" and "runs/" not in config.generator["model"]
    domains = out.rsplit("preference queries per DPO domain: ", 1)[1].splitlines()[0]
    assert {part.rsplit(" ", 1)[0] for part in domains.split(", ")} == {
        "mathematics", "coding", "instruction following", "logical reasoning"}
    # every evaluation set the report names is a decontamination target and no seed is one
    targets = " ".join(full["filters"]["decontaminate"]["eval_files"]).lower()
    assert all(name in targets for name in ("gsm8k_test", "math_test", "humaneval", "mbpp_test", "ifeval"))


@pytest.mark.e2e
def test_build_scaled_reports_counts_per_reason_and_source(tmp_path):
    config = DataConfig(output_dir=str(tmp_path / "out"), **ZERO, areas={"math": {"procedural": 64, "k": 4}},
                        engine={"chunk": 32})
    report = build_scaled(config, progress=False)
    assert report["areas"]["math"]["failures"]
    assert report["sources"] == {"procedural:arithmetic": report["splits"]["sft"]}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Candidates rejected, by reason" in md and "| math | wrong final answer |" in md


class Recording:
    """A generator wrapper that keeps every candidate text it hands out, call by call (reseed passes through)."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, []

    def reseed(self, seed: int) -> None:
        self.inner.reseed(seed)

    def generate(self, queries, k):
        out = self.inner.generate(queries, k)
        self.calls.append([[c.text for c in cands] for cands in out])
        return out


@pytest.mark.e2e  # generates with the micro model
def test_a_redone_chunk_repeats_the_hf_backends_samples(tmp_path, micro_base):
    """The HF backend is reseeded per chunk, so a chunk generated again after a crash draws the same samples, even
    though other chunks were generated in between (the torch RNG has moved on)."""
    generator = {"backend": "hf", "model_path": str(micro_base), "max_new_tokens": 8, "temperature": 1.0,
                 "batch_size": 8}
    config = DataConfig(output_dir=str(tmp_path / "out"), **ZERO, generator=generator,
                        areas={"math": {"procedural": 24, "k": 2, "splits": {"sft": 0.5, "preference": 0.5}}})
    engine = parse_engine({"chunk": 8})
    (unit,) = plan_units(config, engine)
    work = WorkDir(tmp_path / "work")
    model = make_generator(generator, seed=0)
    first = Recording(model)
    run_unit(config, engine, unit, work, first)
    assert len(first.calls) == 3 and first.calls[0] != first.calls[1]
    assert all(json.loads(work.chunk_stats(unit, c).read_text())["tokens"] > 0 for c in range(3))
    work.done(unit).unlink()
    work.chunk_stats(unit, 1).unlink()  # killed before chunk 1's mark
    again = Recording(model)
    run_unit(config, engine, unit, work, again)
    assert again.calls == [first.calls[1]]


@pytest.mark.e2e  # two scaled builds
def test_the_mixture_keeps_what_the_in_memory_mixture_keeps(tmp_path):
    """The merge cuts the mixture in passes over the filtered SFT rows: the rows it keeps are the ones
    `apply_mixture` keeps from the same rows (an unmixed build of the same config gives them)."""
    areas = {"math": {"procedural": 160, "k": 4}, "logic": {"procedural": 120, "k": 4}}
    mixture = {"weights": {"math": 0.7, "logic": 0.3}, "sft_rows": 90}
    plain = config_file(tmp_path, "plain", {"chunk": 16}, areas, jsonl=True)
    mixed = config_file(tmp_path, "mixed", {"chunk": 16}, areas, jsonl=True, mixture=mixture)
    assert main(["--config", str(plain)]) == 0 and main(["--config", str(mixed)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "plain" / "sft.jsonl").read_text().splitlines()]
    expected, report = apply_mixture(rows, parse_mixture(mixture, list(areas)), seed=0)
    kept = [json.loads(line) for line in (tmp_path / "mixed" / "sft.jsonl").read_text().splitlines()]
    assert len(rows) > 90 and kept == expected
    written = json.loads((tmp_path / "mixed" / "report.json").read_text())["mixture"]
    for area in areas:  # the report counts every filtered SFT row of the area, and the same token lengths
        assert (written[area]["built"], written[area]["kept"]) == (report[area]["built"], report[area]["kept"])
        assert written[area]["tokens"] == {k: v for k, v in report[area]["tokens"].items() if k != "lengths"}
