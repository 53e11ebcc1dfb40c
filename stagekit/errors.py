"""The error every config check raises. Its own module, importing nothing, so that the model layer (qwen25) can
raise it without importing TRL through `stagekit.config`: the model, its kernels and the GPU benchmarks must load on
a machine that has torch, triton and transformers alone (`make gpu-check` on a bare GPU image)."""


class ConfigError(ValueError):
    """A config file or command-line value that is wrong; the message names the key or file."""
