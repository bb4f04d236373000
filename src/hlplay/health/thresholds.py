"""Health thresholds: built-in defaults, inventory variables, extra vars, flags.

Precedence, lowest first: the defaults below; the host's inventory variables
(``health_disk_max_percent``, ``health_mem_min_percent``,
``health_load_max_per_cpu``); extra vars (``-e``) under the same names; the
command-line flags (``--disk-max``, ``--mem-min``, ``--load-max``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from hlplay.errors import HlplayError

DISK_VAR = "health_disk_max_percent"
MEM_VAR = "health_mem_min_percent"
LOAD_VAR = "health_load_max_per_cpu"


class ThresholdError(HlplayError):
    """A threshold that is not a number in its range."""


@dataclass(frozen=True)
class Thresholds:
    """When a host's numbers become findings.

    ``disk_max_percent``: a disk at or above this much used is *bad*.
    ``mem_min_percent``: less memory available than this share of the total is *bad*.
    ``load_max_per_cpu``: a 1-minute load average above this per CPU is a *warning*
    (a busy host is not a broken one).
    """

    disk_max_percent: float = 90.0
    mem_min_percent: float = 10.0
    load_max_per_cpu: float = 2.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def merged(self, values: Mapping[str, Any], *, source: str = "variable") -> Thresholds:
        """These thresholds with any of the three variables found in ``values``."""
        changes: dict[str, float] = {}
        for var, field_name, low, high in _FIELDS:
            if var in values and values[var] is not None:
                changes[field_name] = number(values[var], f"{source} {var}", low, high)
        return replace(self, **changes) if changes else self

    def with_flags(
        self,
        disk_max: float | None = None,
        mem_min: float | None = None,
        load_max: float | None = None,
    ) -> Thresholds:
        """Command-line flags (or module arguments) override everything."""
        return self.merged(
            {DISK_VAR: disk_max, MEM_VAR: mem_min, LOAD_VAR: load_max}, source="option"
        )


_FIELDS: tuple[tuple[str, str, float, float], ...] = (
    (DISK_VAR, "disk_max_percent", 0.0, 100.0),
    (MEM_VAR, "mem_min_percent", 0.0, 100.0),
    (LOAD_VAR, "load_max_per_cpu", 0.0, 1_000_000.0),
)


def number(value: Any, what: str, low: float, high: float) -> float:
    """``value`` as a float within ``[low, high]``, or a one-line ThresholdError."""
    if isinstance(value, bool):
        raise ThresholdError(f"{what} must be a number, got {value!r}")
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise ThresholdError(f"{what} must be a number, got {value!r}") from None
    if not low <= num <= high:
        raise ThresholdError(f"{what} must be between {low:g} and {high:g}, got {num:g}")
    return num


def thresholds_for(
    host_vars: Mapping[str, Any], flags: Mapping[str, float | None] | None = None
) -> Thresholds:
    """A host's thresholds: defaults < its variables (extra vars merged in) < ``flags``
    (``disk_max``, ``mem_min``, ``load_max``; None = not given)."""
    found = Thresholds().merged(host_vars)
    if flags:
        found = found.with_flags(flags.get("disk_max"), flags.get("mem_min"), flags.get("load_max"))
    return found
