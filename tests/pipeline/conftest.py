"""A real two-run DPO sweep on the micro model (3 steps each), shared by the sweep and compare tests."""

from __future__ import annotations

import pytest
from datasets import Dataset

CPU = {"bf16": False, "gradient_checkpointing": False, "report_to": "none", "logging_steps": 1}


def _preference_rows() -> list[dict]:
    rows = []
    for a in range(4):
        for b in range(4):
            prompt = [{"role": "user", "content": f"Sam has {a} apples and gets {b} more. How many?"}]
            right = f"{a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
            wrong = f"{a} + {b} = {a + b + 1}. The answer is \\boxed{{{a + b + 1}}}."
            rows.append({
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": right}],
                "rejected": [{"role": "assistant", "content": wrong}],
            })  # fmt: skip
    return rows


def write_sweep(path, *, name: str, output_root, base_checkpoint, pairs, betas=(0.1, 0.5), **extra) -> None:
    import yaml

    spec = {
        "name": name,
        "stage": "dpo",
        "base_config": "configs/dpo/tiny.yaml",
        "overrides": {
            "model_name_or_path": str(base_checkpoint), "dataset_path": str(pairs), "eval_dataset_path": str(pairs),
            "max_steps": 3, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, **CPU, **extra,
        },
        "method": "grid",
        "parameters": {"beta": list(betas)},
        "max_parallel": 2,
        "output_root": str(output_root),
    }  # fmt: skip
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture
def sweep_writer():
    """`write_sweep` for tests that write a sweep file of their own."""
    return write_sweep


@pytest.fixture(scope="session")
def micro_sweep(micro_base, tmp_path_factory):
    """(sweep file, spec, runs) of `qwenpost sweep` run for real: DPO on the micro model, beta 0.1 and 0.5."""
    from pipeline.sweep import load_sweep, run_sweep

    root = tmp_path_factory.mktemp("sweep")
    pairs = root / "pairs"
    Dataset.from_list(_preference_rows()).save_to_disk(str(pairs))
    path = root / "micro_beta.yaml"
    write_sweep(path, name="micro_beta", output_root=root / "sweeps", base_checkpoint=micro_base, pairs=pairs)
    spec = load_sweep(path)
    runs = run_sweep(spec)
    return path, spec, runs
