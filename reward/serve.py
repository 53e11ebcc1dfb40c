"""`python -m reward serve --config configs/reward/serve_tiny.yaml [--host 127.0.0.1 --port 8765]`: load the reward
model(s) and the judge (`judge:`, any `generators` backend: a local checkpoint or an OpenAI-compatible server),
build the app (reward/app.py) and serve it with uvicorn until interrupted.

Bound to loopback unless `host` says otherwise; set `api_token` (or the REWARD_API_TOKEN environment variable)
before exposing it. More GPUs or hosts: one replica per device (`--device cuda:N --port P`) and give
`RewardClient` the list of replica URLs (round-robin with fail-over).
"""

import os

import torch
import uvicorn

from generators import Generator, make_model_generator
from reward.app import RMScorer, create_app
from reward.config import ServeConfig
from reward.judge import parse_judge
from reward.model_scorer import RewardModelScorer
from stagekit.config import ConfigError, parse_config


def main(argv: list[str] | None = None) -> None:
    """Parse the config, load the reward model(s), serve until interrupted."""
    config = parse_config(ServeConfig, argv)

    def load(key: str, path: str) -> RMScorer:
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
            raise ConfigError(f"`{key}`: no reward-model checkpoint directory at {path}")
        return RewardModelScorer.from_pretrained(
            path, device=config.device, dtype=config.dtype, max_length=config.max_length
        )

    def load_judge() -> Generator | None:
        settings = parse_judge(config.judge)
        if settings is None:
            return None
        path = settings.generator.get("model_path")
        if settings.backend == "hf" and not os.path.isfile(os.path.join(str(path), "config.json")):
            raise ConfigError(f"`judge.model_path`: no checkpoint directory at {path}")
        try:
            return make_model_generator(settings.generator_settings())
        except ValueError as err:  # the backend's own checks (sampling settings, URLs, limits)
            raise ConfigError(f"`judge`: {err}") from err

    judge_local = config.judge is not None and config.judge["backend"] == "hf"
    if config.torch_threads > 0 and (config.weights["rm"] != 0 or config.criterion_models or judge_local):
        torch.set_num_threads(config.torch_threads)
    scorer = load("model_path", config.model_path) if config.weights["rm"] != 0 else None
    criterion_scorers = {name: load(f"criterion_models.{name}", p) for name, p in config.criterion_models.items()}
    app = create_app(config, scorer, criterion_scorers=criterion_scorers, judge=load_judge())
    if config.host not in ("127.0.0.1", "localhost", "::1") and config.api_token is None:
        print(f"reward service: warning: listening on {config.host} without an api_token")
    print(
        f"reward service: http://{config.host}:{config.port} model={config.model_path} "
        f"criteria={sorted(config.criterion_models)} weights={config.weights} "
        f"judge={parse_judge(config.judge).label if config.judge else None} "
        "(POST /v1/score, GET /healthz, GET /metrics)",
        flush=True,
    )
    uvicorn.run(  # per-request access logs would flood
        app, host=config.host, port=config.port, access_log=False, timeout_keep_alive=config.keep_alive_s
    )
