"""Generators: one `Generator` protocol and the model-backed backends, shared by every package that asks a model
for text (floor 3, beside `verifiers` and `sandbox`: it imports only `qwen25` and `stagekit`).

- `hf`: a local HF checkpoint (`model_path`), batched `generate` over the chat template (`generators/hf.py`)
- `openai`: an OpenAI-compatible `/v1/chat/completions` endpoint (`base_url`, `model`), e.g. a vLLM server
  (`generators/openai_http.py`)

Users: the data builders (`data_builders.generators` re-exports these and adds the offline `procedural` backend and
the vLLM child-process launcher) and the reward service's judge component (`reward/judge.py`). The protocol lives
here, below both, so the reward service can ask a judge model without importing a stage above it.
"""

from generators.base import Candidate, Generator, Query
from generators.hf import HFGenerator
from generators.openai_http import EndpointError, OpenAIGenerator

MODEL_BACKENDS = {"hf": HFGenerator, "openai": OpenAIGenerator}

__all__ = ["MODEL_BACKENDS", "Candidate", "EndpointError", "Generator", "HFGenerator", "OpenAIGenerator", "Query",
           "make_model_generator"]


def make_model_generator(settings: dict, seed: int = 0) -> Generator:
    """The model backend named by `settings["backend"]` ("hf" or "openai"), built with the rest of `settings` as
    keyword arguments (`seed` is the HF backend's default seed). ValueError naming an unknown backend."""
    options = dict(settings)
    backend = options.pop("backend", None)
    if backend == "hf":
        options.setdefault("seed", seed)
        return HFGenerator(**options)
    if backend == "openai":
        return OpenAIGenerator(**options)
    raise ValueError(f"generator backend: expected one of {list(MODEL_BACKENDS)}, got {backend!r}")
