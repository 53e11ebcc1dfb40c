"""The OpenAI-compatible HTTP backend (vLLM or any such server), defined in `generators/openai_http.py` (floor 3,
shared with the reward service's judge) and re-exported here for the builders' imports."""

from generators.openai_http import RETRY_STATUS, EndpointError, OpenAIGenerator

__all__ = ["RETRY_STATUS", "EndpointError", "OpenAIGenerator"]
