"""Figures of the benchmark: every one keeps its raw samples and says how many runs it stands on."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: with few runs p95 is the largest sample but one, or the largest."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


@dataclass
class Figure:
    """One line of the table.

    `samples` are the raw measurements (median/p95/min/max are taken over them). A derived figure (a
    ratio of medians, a fitted slope) sets `value`; its `samples` are then what it was derived from
    per run or per step, shown beside it for the spread.
    """

    metric: str
    unit: str
    samples: list[float]
    target: str = ""
    met: bool | None = None
    value: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def headline(self) -> float:
        return self.median if self.value is None else self.value

    def as_dict(self) -> dict[str, Any]:
        summary = {
            "runs": self.runs,
            "median": self.median,
            "p95": percentile(self.samples, 0.95),
            "p99": percentile(self.samples, 0.99),
            "min": min(self.samples),
            "max": max(self.samples),
        }
        return {
            "metric": self.metric.strip(),
            "unit": self.unit,
            "value": None if self.value is None else round(self.value, 3),
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()},
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "samples": [round(s, 3) for s in self.samples],
            **self.extra,
        }


def fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.1f} {unit}"


def table(figures: list[Figure], load: dict[str, tuple[float, float, float]]) -> str:
    """The table as printed: value (the judged figure), then runs and median/p95/min/max of the samples."""
    head = ("metric", "value", "runs", "median", "p95", "p99", "min", "max", "target", "met")
    lines = []
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        lines.append(
            (
                f.metric,
                fmt(f.headline, f.unit),
                str(f.runs),
                fmt(f.median, f.unit),
                fmt(percentile(f.samples, 0.95), f.unit),
                fmt(percentile(f.samples, 0.99), f.unit),
                fmt(min(f.samples), f.unit),
                fmt(max(f.samples), f.unit),
                f.target,
                met,
            )
        )
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]

    def render(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    out = [render(head), "  ".join("-" * w for w in widths)]
    out += [render(row) for row in lines]
    out.append("")
    out.append("load average (1, 5, 15 min) when each section started:")
    out += [
        f"  {name:<22} {one:5.2f} {five:5.2f} {fifteen:5.2f}" for name, (one, five, fifteen) in load.items()
    ]
    notes = [f for f in figures if f.note]
    if notes:
        out.append("notes:")
        out += [f"  {f.metric}: {f.note}" for f in notes]
    return "\n".join(out)
