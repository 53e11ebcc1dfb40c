"""stagekit.device: the one place that picks device and dtype for models loaded outside a trainer."""

from __future__ import annotations

import json

import pytest
import torch

from stagekit.config import ConfigError
from stagekit.device import check_device_dtype, checkpoint_dtype, pick_device, pick_dtype

HAS_CUDA = torch.cuda.is_available()


def _checkpoint(tmp_path, dtype_key, value):
    (tmp_path / "config.json").write_text(json.dumps({dtype_key: value}))
    return tmp_path


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only answer")
def test_auto_on_a_machine_without_cuda_is_cpu_fp32(tmp_path):
    device = pick_device("auto")
    assert device == torch.device("cpu")
    assert pick_dtype("auto", device, _checkpoint(tmp_path, "torch_dtype", "bfloat16")) == torch.float32


@pytest.mark.parametrize(
    ("key", "stored", "expected"),
    [("torch_dtype", "bfloat16", torch.bfloat16), ("dtype", "float16", torch.float16),
     ("torch_dtype", "float32", torch.bfloat16), (None, None, torch.bfloat16)],
)  # fmt: skip
def test_auto_on_a_gpu_keeps_a_16bit_checkpoint_dtype_else_bf16(tmp_path, key, stored, expected):
    path = _checkpoint(tmp_path, key, stored) if key else tmp_path  # no config.json at all in the last case
    assert pick_dtype("auto", torch.device("cuda", 0), path) == expected  # no GPU needed: nothing is allocated


def test_an_explicit_dtype_wins_everywhere(tmp_path):
    path = _checkpoint(tmp_path, "torch_dtype", "bfloat16")
    assert pick_dtype("float32", torch.device("cuda", 0), path) == torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu"), path) == torch.bfloat16
    assert checkpoint_dtype(path) == "bfloat16"


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        pick_device("cuda:1")


@pytest.mark.parametrize(("device", "dtype", "match"),
                         [("auto", "fp8", "dtype"), ("gpu0", "auto", "not a torch device")])  # fmt: skip
def test_bad_strings_are_refused_naming_the_key(device, dtype, match):
    with pytest.raises(ConfigError, match=match):
        check_device_dtype(device, dtype, where="eval")
