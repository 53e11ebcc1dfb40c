"""Generators: one `Generator` protocol, three backends, chosen by the `generator` section of a data config.

- `procedural` (default): offline, no model; draws from the candidates each area's task maker wrote
- `hf`: a local HF checkpoint (`model_path`), batched `generate` over the chat template
- `openai`: an OpenAI-compatible `/v1/chat/completions` endpoint (`base_url`, `model`), e.g. a vLLM server

The protocol and the two model backends live in the `generators` package (floor 3), which the reward service's
judge uses too; they are re-exported here. The procedural backend (it draws from the builders' task makers'
candidates) and the vLLM child-process launcher (`vllm_server.py`) are the builders' own.
"""

from data_builders.generators.procedural import ProceduralGenerator
from generators import Candidate, Generator, HFGenerator, OpenAIGenerator, Query, make_model_generator

BACKENDS = ("procedural", "hf", "openai")

__all__ = ["BACKENDS", "Candidate", "Generator", "HFGenerator", "OpenAIGenerator", "ProceduralGenerator", "Query",
           "make_generator"]


def make_generator(settings: dict, seed: int = 0) -> Generator:
    """The backend named by `settings["backend"]`, built with the rest of `settings` as keyword arguments."""
    options = dict(settings)
    backend = options.pop("backend", "procedural")
    if backend == "procedural":
        if options:
            raise ValueError(f"config key 'generator': the procedural backend takes no options, got {sorted(options)}")
        return ProceduralGenerator(seed=seed)
    if backend in ("hf", "openai"):
        return make_model_generator({"backend": backend, **options}, seed=seed)
    raise ValueError(f"config key 'generator.backend': expected one of {list(BACKENDS)}, got {backend!r}")
