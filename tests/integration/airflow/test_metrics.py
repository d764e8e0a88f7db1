"""The daily job's own metrics from a real run of the daily DAG: `airflow dags test` on the fixture model's Triton
with `[metrics] statsd_on` pointed at a UDP socket this test listens on (conftest.observed_day); the packets carry
the day's counters, equal to what the lake holds for the day, and one timer per stage (per batch for transcribe);
statsd-exporter's mapping turns those names into every series the dashboard and the docs query."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict

import pytest
import yaml

from sensevoice_pipeline.lake.catalog import Lake
from tests.integration.airflow.conftest import OBSERVED_DAY
from tests.support.compose import DEPLOYMENT_DOC, GRAFANA_DASHBOARD
from tests.support.paths import ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.triton]

PREFIX = "airflow.sensevoice.daily."  # [metrics] statsd_prefix, then the project's names
MAPPING = ROOT / "deploy" / "statsd" / "mapping.yml"  # statsd-exporter's, in docker-compose.yml


def _ours(packets: list[str]) -> dict[tuple[str, str], list[float]]:
    """(name without the prefix, StatsD type) -> the values received, in order."""
    seen: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in packets:
        if not line.startswith(PREFIX):
            continue
        name, _, rest = line[len(PREFIX) :].partition(":")
        value, _, kind = rest.partition("|")
        seen[(name, kind.split("|")[0])].append(float(value))
    return dict(seen)


def test_the_days_counters_match_what_was_published(observed_day):
    metrics = _ours(observed_day.packets)
    assert metrics, f"no sensevoice.daily.* packet among {len(observed_day.packets)} received"
    (run,) = Lake(observed_day.settings.lake_root).read("runs", OBSERVED_DAY).to_pylist()
    recordings = Lake(observed_day.settings.lake_root).read("recordings", OBSERVED_DAY).to_pylist()
    failed = sum(r["status"] == "failed" for r in recordings)
    assert failed == 1  # the sample day's corrupt upload

    assert metrics[("files", "c")] == [observed_day.files] == [len(recordings)]
    assert metrics[("files_failed", "c")] == [failed]
    assert metrics[("files_ok", "c")] == [observed_day.files - failed]
    assert metrics[("utterances", "c")] == [run["utterances"]] and run["utterances"] > 0
    assert math.isclose(metrics[("speech_seconds", "c")][0], run["speech_seconds"], rel_tol=1e-6)
    assert metrics[("days", "c")] == [1]
    assert metrics[("failed_share", "g")] == [pytest.approx(failed / observed_day.files)]


def test_each_stage_sends_its_timing(observed_day):
    metrics = _ours(observed_day.packets)
    batches = math.ceil(observed_day.files / 16)  # the batch_size Param's default
    assert len(metrics[("plan", "ms")]) == 1 and len(metrics[("publish", "ms")]) == 1
    assert len(metrics[("transcribe", "ms")]) == batches == 2
    assert all(v > 0 for stage in ("plan", "transcribe", "publish") for v in metrics[(stage, "ms")])


# -- what Prometheus gets: statsd-exporter's mapping over the names really sent -------------------------------------

STATSD_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


def _prometheus_names(statsd_name: str, statsd_type: str, mappings: list[dict]) -> set[str]:
    """The series statsd-exporter makes of one StatsD metric under ``mappings`` (its glob rules: ``*`` is one
    dot-separated part, the first rule that matches wins; an observer mapped to a histogram gives _bucket, _sum and
    _count), or an empty set when no rule matches."""
    kind = STATSD_TYPES[statsd_type]
    for rule in mappings:
        if rule.get("match_metric_type", kind) != kind:
            continue
        pattern = (
            "^" + r"\.".join("([^.]+)" if p == "*" else re.escape(p) for p in rule["match"].split(".")) + "$"
        )
        if m := re.match(pattern, statsd_name):
            name = re.sub(r"\$\{(\d+)\}", lambda g: m.group(int(g.group(1))), rule["name"])
            if kind == "observer" and rule.get("observer_type") == "histogram":
                return {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            return {name}
    return set()


def test_the_exporters_mapping_gives_every_name_the_dashboard_and_the_docs_use(observed_day):
    """deploy/statsd/mapping.yml applied to the StatsD names the run really sent gives every sensevoice_daily_*
    series that deploy/grafana/sensevoice-triton.json and docs/deployment.md query."""
    mappings = yaml.safe_load(MAPPING.read_text())["mappings"]
    produced: set[str] = set()
    for line in observed_day.packets:
        if line.startswith(PREFIX):
            name, _, rest = line.partition(":")
            produced |= _prometheus_names(name, rest.split("|")[1], mappings)
    dashboard = " ".join(
        t["expr"] for p in json.loads(GRAFANA_DASHBOARD.read_text())["panels"] for t in p.get("targets", [])
    )
    used = set(re.findall(r"\bsensevoice_daily_\w+", dashboard + DEPLOYMENT_DOC.read_text()))
    used = {u for u in used if not u.endswith("_")}  # "..._files_ok_total" abbreviations in the docs' tables
    assert used and used <= produced, sorted(used - produced)
    assert {"sensevoice_daily_files_total", "sensevoice_daily_transcribe_seconds_bucket"} <= produced
