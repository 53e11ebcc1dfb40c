"""The SFT mixture: per-area weights, the rows each area contributes, and a report of counts and token lengths.

Configured by the `mixture` mapping of the data config:

    mixture:
      weights: {math: 0.2, code: 0.1, instruction: 0.15, ...}   # shares of the SFT split; every built area named
      sft_rows: 1000000        # the SFT rows the areas should give together; null: weights only shape the report
      tokenizer: null          # local HF tokenizer for token lengths; null: verifiers.tokens' approximation

With `sft_rows`, each area's quota is sft_rows x weight / sum(weights) (largest remainder, so quotas add up); an
area with more rows keeps a subset chosen by a hash of (seed, row id), in build order, so the choice does not
depend on the other areas; an area with fewer keeps all and the report shows its shortfall. The report counts
rows per area (target, built, kept) and their token lengths (mean, median, p95, max of prompt + response), and
`histogram_png` draws one histogram per area (matplotlib, Agg backend, no metadata so the bytes are stable).
"""

import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass, field

from verifiers.tokens import count_tokens

_KEYS = {"weights", "sft_rows", "tokenizer"}


@dataclass
class MixtureConfig:
    weights: dict[str, float] = field(default_factory=dict)  # area -> weight; empty: every area kept whole
    sft_rows: int | None = None  # total SFT rows to keep across areas; None: no down-sampling
    tokenizer: str | None = None  # local tokenizer for the length report; None: approximate tokens


def parse_mixture(values: object, areas: list[str]) -> MixtureConfig:
    """MixtureConfig from YAML; weights must name exactly the configured areas, each a number >= 0."""
    def fail(key: str, expected: str, value: object) -> ValueError:
        return ValueError(f"config key 'mixture.{key}': expected {expected}, got {value!r}")

    if not isinstance(values, dict):
        raise ValueError(f"config key 'mixture': expected a mapping with keys {sorted(_KEYS)}, got {values!r}")
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ValueError(f"config key 'mixture': unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    weights = values.get("weights", {}) or {}
    if not isinstance(weights, dict):
        raise fail("weights", "a mapping of area name to weight", weights)
    if weights and set(weights) != set(areas):
        missing, extra = sorted(set(areas) - set(weights)), sorted(set(weights) - set(areas))
        raise fail("weights", f"a weight for each configured area {sorted(areas)} and no other "
                              f"(missing {missing}, extra {extra})", sorted(weights))
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise fail(f"weights.{name}", "a number >= 0", weight)
    if weights and sum(weights.values()) <= 0:
        raise fail("weights", "weights that add up to more than 0", weights)
    sft_rows = values.get("sft_rows")
    if sft_rows is not None and (isinstance(sft_rows, bool) or not isinstance(sft_rows, int) or sft_rows < 0):
        raise fail("sft_rows", "a whole number >= 0 or null", sft_rows)
    if sft_rows is not None and not weights:
        raise fail("weights", "per-area weights when sft_rows is set", weights)
    tokenizer = values.get("tokenizer")
    if tokenizer is not None and (not isinstance(tokenizer, str) or not tokenizer):
        raise fail("tokenizer", "a local tokenizer directory or null", tokenizer)
    return MixtureConfig({k: float(v) for k, v in weights.items()}, sft_rows, tokenizer)


def quotas(weights: dict[str, float], total: int) -> dict[str, int]:
    """total x weight / sum(weights) per area, rounded by largest remainder so the quotas add up to `total`."""
    norm = sum(weights.values())
    exact = {area: total * w / norm for area, w in weights.items()}
    out = {area: int(value) for area, value in exact.items()}
    for area in sorted(exact, key=lambda a: (out[a] - exact[a], a))[: total - sum(out.values())]:
        out[area] += 1
    return out


def _rank(seed: int, row_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:mixture:{row_id}".encode()).digest()


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


def apply_mixture(rows: list[dict], config: MixtureConfig, seed: int) -> tuple[list[dict], dict]:
    """(SFT rows kept, report {area: {weight, target, built, kept, tokens{mean, p50, p95, max}}})."""
    by_area: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_area[row["category"]].append(row)
    targets = quotas(config.weights, config.sft_rows) if config.sft_rows is not None else {}
    keep_ids: set[str] = set()
    for area, area_rows in by_area.items():
        target = targets.get(area, len(area_rows))
        chosen = sorted(area_rows, key=lambda r: _rank(seed, r["id"]))[:target]
        keep_ids.update(id(r) for r in chosen)
    kept = [row for row in rows if id(row) in keep_ids]
    report = {}
    for area in sorted(set(by_area) | set(config.weights)):
        lengths = sorted(count_tokens("\n".join(m["content"] for m in r["messages"]), config.tokenizer)
                         for r in kept if r["category"] == area)
        report[area] = {
            "weight": config.weights.get(area),
            "target": targets.get(area),
            "built": len(by_area.get(area, [])),
            "kept": len(lengths),
            "tokens": {"mean": round(sum(lengths) / len(lengths), 1) if lengths else 0,
                       "p50": _percentile(lengths, 0.5), "p95": _percentile(lengths, 0.95),
                       "max": lengths[-1] if lengths else 0, "lengths": lengths},
        }
    return kept, report


def histogram_png(report: dict, approx: bool = True) -> bytes:
    """One histogram of token lengths per area, as PNG bytes (stable: no software or date metadata)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    areas = [a for a in report if report[a]["tokens"]["lengths"]]
    cols = 3 if len(areas) > 4 else max(1, len(areas))
    rows_n = max(1, -(-len(areas) // cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 2.8 * rows_n), squeeze=False)
    for ax in axes.flat[len(areas):]:
        ax.axis("off")
    for ax, area in zip(axes.flat, areas):
        lengths = report[area]["tokens"]["lengths"]
        ax.hist(lengths, bins=min(30, max(5, len(set(lengths)))), color="tab:blue")
        ax.set_title(f"{area}: {len(lengths)} rows, median {report[area]['tokens']['p50']}", fontsize=9)
        ax.set_xlabel("tokens" + (" (approx.)" if approx else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def summary_table(report: dict) -> str:
    """The report as a few aligned lines for the CLI summary."""
    header = (f"  {'area':<16} {'weight':>6} {'target':>8} {'built':>7} {'kept':>7} {'tok mean':>9} {'p50':>6} "
              f"{'p95':>6} {'max':>6}")
    lines = [header]
    for area, r in report.items():
        weight = "-" if r["weight"] is None else f"{r['weight']:g}"
        target = "-" if r["target"] is None else str(r["target"])
        t = r["tokens"]
        lines.append(f"  {area:<16} {weight:>6} {target:>8} {r['built']:>7} {r['kept']:>7} {t['mean']:>9} "
                     f"{t['p50']:>6} {t['p95']:>6} {t['max']:>6}")
    return "\n".join(lines)
