"""The one result type every verifier returns, so rewards, filters and reports read verifiers alike."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VerifierResult:
    """What a verifier concluded about one response.

    `details` must stay JSON-serialisable: records store it as a JSON string and the reward service returns it.
    """

    verifier: str  # registry name, e.g. "math"
    passed: bool  # the response is acceptable as a verified answer
    score: float  # reward in [0, 1]; 1.0 if passed else 0.0 for binary verifiers
    format_ok: bool  # the answer was given in the form the verifier asks for
    details: dict = field(default_factory=dict)  # what was extracted, expected, and why it failed
