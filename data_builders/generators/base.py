"""The generator protocol (`Candidate`, `Query`, `Generator`), defined in `generators/base.py` (floor 3, so the
reward service's judge uses it too) and re-exported here, where the builders have always imported it."""

from generators.base import Candidate, Generator, Query

__all__ = ["Candidate", "Generator", "Query"]
