"""The authoritative list of the metrics Tradewire exports, read from the services themselves.

Every installed service is built (not started) on an in-memory bus and its registry is read, so
the list can never drift from the code: dashboards and alert rules are checked against it
(``tests/unit/test_prometheus_rules.py``). Services must therefore define their metrics when they
are constructed, not later. A labelled metric with no sample yet is still listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.config import Config
from tradewire_common.metrics import ServiceMetrics
from tradewire_common.registry import SERVICE_NAMES, service_factory

#: Sample-name suffixes Prometheus sees per metric type (the text exposition format).
_SERIES_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


@dataclass(frozen=True, slots=True)
class ExportedMetric:
    service: str
    #: The family name (a counter's without ``_total``).
    name: str
    kind: str
    labels: tuple[str, ...]
    doc: str

    @property
    def series(self) -> tuple[str, ...]:
        """The names this metric's samples carry, as PromQL selects them."""
        return tuple(self.name + suffix for suffix in _SERIES_SUFFIXES[self.kind])


def service_metrics(config: Config | None = None, names: tuple[str, ...] = SERVICE_NAMES) -> dict[str, ServiceMetrics]:
    """Each service's metrics object, from a service built on an in-memory bus (never started)."""
    config = config or Config()
    broker = MemoryBroker()
    result: dict[str, ServiceMetrics] = {}
    for name in names:
        bus = MemoryBus(name, broker)
        service_factory(name)(config, bus, None)
        result[name] = bus.metrics
    return result


def exported_metrics(config: Config | None = None) -> list[ExportedMetric]:
    """Every metric family of every service, sorted by name."""
    found: list[ExportedMetric] = []
    for service, metrics in service_metrics(config).items():
        for family in metrics.registry.collect():
            spec = metrics.specs.get(family.name)
            labels = spec.labels if spec is not None else ()
            found.append(ExportedMetric(service, family.name, family.type, labels, family.documentation))
    return sorted(found, key=lambda m: m.name)


def exported_series_names(config: Config | None = None) -> frozenset[str]:
    """Every sample name the services' ``/metrics`` can carry (what rules and dashboards select)."""
    return frozenset(series for metric in exported_metrics(config) for series in metric.series)


def main() -> None:
    """``python -m tradewire_common.metrics_catalog``: one line per metric (name, type, labels, help)."""
    for metric in exported_metrics():
        print(f"{metric.name}\t{metric.kind}\t{','.join(metric.labels) or '-'}\t{metric.doc}")


if __name__ == "__main__":
    main()
