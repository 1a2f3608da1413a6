"""What every part returns: rows of one measurement next to its baseline, both taken in the same run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class Target:
    """What issue 13 asks of a row: its ratio (value / baseline) or its value, at least or at most `bound`."""

    of: Literal["ratio", "value"]
    op: Literal[">=", "<="]
    bound: float

    def met_by(self, row: Row) -> bool | None:
        measured = row.ratio if self.of == "ratio" else row.value
        if measured is None:
            return None
        return measured >= self.bound if self.op == ">=" else measured <= self.bound

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.bound:g}x" if self.of == "ratio" else f"{sign} {self.bound:g}"


@dataclass(frozen=True)
class Row:
    part: str
    case: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    load: int | None = None  # jobs in flight or concurrent chats it was measured at, for the plot

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self)

    def to_json(self) -> dict:
        target = None if self.target is None else asdict(self.target)
        return {**asdict(self), "target": target, "ratio": self.ratio, "met": self.met}


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: a value that was measured (with 50 samples, p99 is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def median(values: list[float]) -> float:
    return percentile(values, 50)
