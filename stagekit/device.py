"""Device and dtype for every model the project loads outside a trainer, decided in one place.

Evaluation (`qwenpost eval`, the pipeline's table), GRPO's scoring pass, the reward service and `reward eval`, and
the data builders' HF generator all load a checkpoint, generate or score with it, and let it go. Before this module
each chose for itself, and most chose nothing: a 7B model was evaluated on the CPU of an 8-GPU node, in fp32 even
when the checkpoint is bf16 (twice the memory). Trainers are not concerned: accelerate places their model and
their `bf16` flag decides precision.

    device "auto": what accelerate reports for this process (`PartialState().device`: its own GPU under
                   `accelerate launch`, cuda:0 in a plain process with CUDA, else cpu); or any torch device string
                   ("cpu", "cuda", "cuda:1"), refused up front when it is not present here.
    dtype  "auto": fp32 on CPU (bf16 matmuls are slow there and the tiny models are trained in fp32); on a GPU the
                   checkpoint's own `torch_dtype` when it is a 16-bit type, else bf16. Or "float32", "bfloat16",
                   "float16" explicitly, anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from accelerate import PartialState

from stagekit.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_HELP = 'where the model runs: "auto" (accelerate\'s device: a GPU if there is one, else cpu), "cpu", "cuda:1"'
DTYPE_HELP = 'model weights dtype: "auto" (fp32 on CPU; on GPU the checkpoint\'s 16-bit dtype or bf16), or float32, ' \
    "bfloat16, float16"  # fmt: skip


def check_device_dtype(device: str, dtype: str, *, where: str = "") -> None:
    """Refuse a malformed device or dtype string before any loading (config validation)."""
    prefix = f"{where}: " if where else ""
    if dtype != "auto" and dtype not in DTYPES:
        raise ConfigError(f"{prefix}`dtype` must be auto, {', '.join(DTYPES)}; got {dtype!r}")
    if device != "auto":
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"{prefix}`device` {device!r} is not a torch device ({exc})") from None


def pick_device(requested: str = "auto") -> torch.device:
    """The device a model loaded outside a trainer runs on (module docstring)."""
    check_device_dtype(requested, "auto")
    if requested == "auto":
        return torch.device(PartialState().device)
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"`device` {requested!r}: this machine has no CUDA device (use auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"`device` {requested!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def checkpoint_dtype(path: str | os.PathLike) -> str | None:
    """The `torch_dtype` (or transformers 5's `dtype`) a checkpoint's config.json records, if any."""
    config = Path(path) / "config.json"
    try:
        values = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    value = values.get("torch_dtype") or values.get("dtype")
    return value if isinstance(value, str) else None


def pick_dtype(requested: str, device: torch.device, checkpoint: str | os.PathLike | None = None) -> torch.dtype:
    """The weights dtype for a model on `device` (module docstring)."""
    check_device_dtype("auto", requested)
    if requested != "auto":
        return DTYPES[requested]
    if device.type == "cpu":
        return torch.float32
    stored = checkpoint_dtype(checkpoint) if checkpoint is not None else None
    return DTYPES[stored] if stored in ("bfloat16", "float16") else torch.bfloat16
