"""Reading a process's Prometheus ``/metrics`` text with prometheus_client's own parser: what
a process says it has done, summed over the samples that match."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import prometheus_client.parser

LabelTest = Callable[[Mapping[str, str]], bool]


def sample_sum(
    text: str, sample: str, labels: Mapping[str, str] | None = None, *, where: LabelTest | None = None
) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels`` and pass
    ``where``; 0 when there are none (a counter not yet incremented has no sample)."""
    return sum(
        found.value
        for family in prometheus_client.parser.text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample
        and (labels or {}).items() <= found.labels.items()
        and (where is None or where(found.labels))
    )
