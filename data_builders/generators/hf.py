"""The local HF checkpoint backend, defined in `generators/hf.py` (floor 3, shared with the reward service's
judge) and re-exported here for the builders' imports."""

from generators.hf import HFGenerator

__all__ = ["HFGenerator"]
