"""The release report: one JSON file per release, and its row in the lake's ``model_releases`` table (DuckDB reads
it through the warehouse's ``model_releases`` view)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.catalog_db import CatalogError
from sensevoice_pipeline.lake.storage import Root, as_root
from sensevoice_pipeline.releases.canary import CanaryVerdict
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.results import Decision, Exported, ReleaseSummary

REPORTS_DIR = "release_reports"  # under the lake root, unless a release names another folder


def check_report_root(lake_root, catalog: str | Path | None = None) -> Root:
    """The lake a release reports to must have a catalog (an s3:// lake needs SVP_CATALOG): checked before a release
    starts, so a release is never promoted and then left without its report."""
    try:
        return Lake(lake_root, catalog).root
    except CatalogError as exc:
        raise ReleaseError(f"the release report cannot be written: {exc}") from exc


def write_release_report(
    lake_root,
    release_id: str,
    exported: Exported | None,
    canary: CanaryVerdict | None,
    decision: Decision,
    started_at: str | None = None,
    report_dir: str | Path | None = None,
    catalog: str | Path | None = None,
) -> ReleaseSummary:
    """The release report as JSON (``<lake>/release_reports/<release_id>.json`` unless ``report_dir``) and as a
    row of the ``model_releases`` table in the lake's catalog (``catalog``, default the lake's own; partition = the
    UTC day the release finished; re-running a release id replaces its row). Returns the row and the report's
    path."""
    lake_root = check_report_root(lake_root, catalog)
    finished = dt.datetime.now(dt.UTC)
    safe_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", release_id)
    report_path = (as_root(report_dir) if report_dir else lake_root / REPORTS_DIR) / f"{safe_id}.json"
    report = {
        "release_id": release_id,
        "started_at": started_at,
        "finished_at": finished.isoformat(timespec="seconds"),
        "outcome": decision.outcome,
        "export": exported.to_dict() if exported else {},
        "canary": canary.to_dict() if canary else None,
        "decision": decision.to_dict(),
    }
    report_path.write_atomic(json.dumps(report, indent=2, default=str) + "\n")
    row = release_row(
        release_id,
        report["export"],
        report["canary"] or {},
        report["decision"],
        _parse_time(started_at) or finished,
        finished,
        report_path,
    )
    date = finished.date().isoformat()
    catalog_used = _append_release_row(lake_root, catalog, date, row)
    return ReleaseSummary(
        outcome=decision.outcome,
        report=str(report_path),
        table=catalog_used,
        date=date,
        row={k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()},
    )


def release_row(
    release_id: str,
    exported: dict,
    canary: dict,
    decision: dict,
    started: dt.datetime,
    finished: dt.datetime,
    report_path: Path,
) -> dict:
    """The ``model_releases`` row (schema: lake.tables.MODEL_RELEASES) of a release, from the serialised records
    (an export or canary that never ran is ``{}``)."""
    thresholds = canary.get("thresholds") or {}
    parity = exported.get("parity") or {}
    return {
        "release_id": release_id,
        "started_at": started,
        "finished_at": finished,
        "outcome": decision["outcome"],
        "candidate_version": _str(exported.get("version", decision.get("version"))),
        "serving_before": _str(canary.get("serving_version", decision.get("serving_before"))),
        "serving_after": _str(decision.get("serving")),
        "precision": exported.get("precision"),
        "exporter": exported.get("exporter"),
        "source_model": exported.get("source_model"),
        "source_sha256": exported.get("source_sha256"),
        "parity_max_abs": parity.get("max_abs"),
        "parity_min_cosine": parity.get("min_cosine"),
        "parity_argmax_agreement": parity.get("argmax_agreement"),
        "golden_cases": canary.get("cases"),
        "transcript_agreement": canary.get("transcript_agreement"),
        "emotion_agreement": canary.get("emotion_agreement"),
        "latency_serving_ms": canary.get("latency_serving_ms"),
        "latency_staged_ms": canary.get("latency_staged_ms"),
        "latency_ratio": canary.get("latency_ratio"),
        "min_transcript_agreement": thresholds.get("min_transcript_agreement"),
        "min_emotion_agreement": thresholds.get("min_emotion_agreement"),
        "max_latency_ratio": thresholds.get("max_latency_ratio"),
        **_shadow_columns(canary.get("shadow") or {}, thresholds),
        "switch_seconds": decision.get("switch_seconds"),
        "reasons": "; ".join(decision.get("reasons") or []) or None,
        "report_path": str(report_path),
    }


def _shadow_columns(shadow: dict, thresholds: dict) -> dict:
    """The shadow canary's figures in the row (null where it did not run)."""
    return {
        "shadow_recordings": shadow.get("answered"),
        "shadow_skipped": shadow.get("skipped_missing"),
        "shadow_cer": shadow.get("cer"),
        "shadow_emotion_agreement": shadow.get("emotion_agreement"),
        "shadow_angry_share_shift": shadow.get("angry_share_shift"),
        "shadow_unknown_rate_shift": _difference(
            shadow.get("unknown_rate_staged"), shadow.get("unknown_rate_published")
        ),
        "max_angry_share_shift": thresholds.get("max_angry_share_shift"),
    }


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def _append_release_row(lake_root: Root, catalog: str | Path | None, date: str, row: dict) -> str:
    """The row into the lake's ``model_releases`` table, replacing an earlier row of the same release id; returns
    the catalog holding it."""
    lake = Lake(lake_root, catalog)
    lake.replace_rows(
        "model_releases", date, "release_id", pa.Table.from_pylist([row], schema=tables.MODEL_RELEASES)
    )
    return lake.catalog.describe()


def _parse_time(value) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _str(value) -> str | None:
    return None if value is None else str(value)
