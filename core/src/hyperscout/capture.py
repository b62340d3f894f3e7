"""Metrics from stdout, for scripts that only print.

A :class:`MetricPattern` is a regular expression with a named group ``value`` and optionally
``iteration``; each matching line becomes one scalar under the pattern's title and series. Without
an ``iteration`` group the n-th match is iteration n (from 0). Backends feed every stdout line of a
job to a :class:`LineParser`, so no change to the script is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from hyperscout.errors import ConfigError

__all__ = ["LineParser", "MetricPattern"]


def _compile(value: Any) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        pattern = value
    else:
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise ConfigError(f"metric pattern {value!r} is not a valid regular expression: {exc}") from None
    if "value" not in pattern.groupindex:
        raise ConfigError(
            f"metric pattern {pattern.pattern!r} has no (?P<value>...) group; "
            r"write it like 'val_acc=(?P<value>[-+.\deE]+)'"
        )
    return pattern


@attrs.frozen
class MetricPattern:
    """``regex`` with ``(?P<value>...)`` (and maybe ``(?P<iteration>...)``) -> ``title/series``."""

    regex: re.Pattern[str] = attrs.field(converter=_compile)
    title: str = attrs.field(converter=str)
    series: str = attrs.field(converter=str)

    @classmethod
    def of(cls, value: MetricPattern | Mapping[str, Any]) -> MetricPattern:
        if isinstance(value, MetricPattern):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"metric pattern {value!r} must be a table with regex, title and series")
        unknown = set(value) - {"regex", "title", "series"}
        missing = {"regex", "title", "series"} - set(value)
        if unknown or missing:
            raise ConfigError(
                f"metric pattern {dict(value)!r}: "
                + (f"unknown key {sorted(unknown)[0]!r}" if unknown else f"missing {sorted(missing)[0]!r}")
                + "; give regex, title and series"
            )
        return cls(value["regex"], value["title"], value["series"])

    def to_dict(self) -> dict[str, str]:
        return {"regex": self.regex.pattern, "title": self.title, "series": self.series}


class LineParser:
    """Turns stdout lines into ``(title, series, iteration, value)`` tuples; one per job."""

    def __init__(self, patterns: Sequence[MetricPattern]) -> None:
        self.patterns = list(patterns)
        self._counts = [0] * len(self.patterns)

    def feed(self, line: str) -> list[tuple[str, str, int, float]]:
        out = []
        for k, p in enumerate(self.patterns):
            for m in p.regex.finditer(line):
                try:
                    value = float(m.group("value"))
                except (TypeError, ValueError):
                    continue
                it_text = m.groupdict().get("iteration")
                if it_text is not None:
                    try:
                        iteration = int(float(it_text))
                    except ValueError:
                        continue
                else:
                    iteration = self._counts[k]
                self._counts[k] += 1
                out.append((p.title, p.series, iteration, value))
        return out
