"""Where data lives and how the daily job runs: defaults, overridden by environment variables, then by explicit
arguments (CLI flags, DAG Params)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .client import default_url
from .storage import ObjectPath, as_root, default_warehouse, is_remote

CHANNEL_MODES = ("mono", "split")


@dataclass(frozen=True)
class Settings:
    # The roots are local dirs or s3://bucket/prefix URIs (storage.ObjectPath; credentials: AWS_* environment).
    raw_root: Path | ObjectPath = Path("var/raw")  # raw/date=YYYY-MM-DD/**.{wav,flac,mp3,ogg,...} (+ manifest.csv)
    lake_root: Path | ObjectPath = Path("var/lake")  # <table>/date=YYYY-MM-DD/data.parquet
    # DuckDB file, always on local disk; default <lake_root>/warehouse.duckdb, or for an s3:// lake
    # var/warehouse/<bucket>/<prefix>/warehouse.duckdb (storage.default_warehouse)
    warehouse: Path | None = None
    triton_url: str = "127.0.0.1:8001"
    language: str = "auto"  # default hint when the manifest has none
    use_itn: bool = True
    channel_mode: str = "mono"  # mono: mix down; split: one transcript per channel (agent / customer)
    model_version: str = ""  # pin a `sensevoice` version; "" = what the server serves
    max_segment_s: float = 30.0
    batch_size: int = 16  # files per mapped task
    concurrency: int = 8  # Triton requests in flight per task
    request_timeout_s: float = 120.0  # deadline of one Triton request (SVP_REQUEST_TIMEOUT_S)
    # Share of a day's files that may fail (bad input) before the run ends failed; the day is published anyway.
    failure_budget: float = 0.2
    # The DuckLake catalog of the lake's tables (SVP_CATALOG): a SQLite file path; default <lake_root>/catalog.sqlite,
    # or for an s3:// lake var/warehouse/<bucket>/<prefix>/catalog.sqlite (lake.default_catalog)
    catalog: str | None = None
    lease_ttl_s: float = 3600.0  # a run holds its date this long after its last heartbeat (SVP_LEASE_TTL_S)

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse or default_warehouse(self.lake_root)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        env = os.environ
        base = cls(
            raw_root=as_root(env.get("SVP_RAW_ROOT", cls.raw_root)),
            lake_root=as_root(env.get("SVP_LAKE_ROOT", cls.lake_root)),
            warehouse=Path(env["SVP_WAREHOUSE"]) if env.get("SVP_WAREHOUSE") else None,
            triton_url=default_url(),
            language=env.get("SVP_LANGUAGE", cls.language),
            channel_mode=env.get("SVP_CHANNEL_MODE", cls.channel_mode),
            request_timeout_s=float(env.get("SVP_REQUEST_TIMEOUT_S", cls.request_timeout_s)),
            failure_budget=float(env.get("SVP_FAILURE_BUDGET", cls.failure_budget)),
            catalog=env.get("SVP_CATALOG") or None,
            lease_ttl_s=float(env.get("SVP_LEASE_TTL_S", cls.lease_ttl_s)),
        )
        return base.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> "Settings":
        """Apply the overrides that are set (None and "" mean: keep the current value)."""
        clean = {k: v for k, v in overrides.items() if v is not None and v != ""}
        for key in ("raw_root", "lake_root"):
            if key in clean:
                clean[key] = as_root(clean[key])
        if "warehouse" in clean:
            if is_remote(clean["warehouse"]):
                raise ValueError(f"the DuckDB warehouse is a local file, not {clean['warehouse']}")
            clean["warehouse"] = Path(clean["warehouse"])
        if "channel_mode" in clean and clean["channel_mode"] not in CHANNEL_MODES:
            raise ValueError(f"unknown channel mode {clean['channel_mode']!r}: expected one of {', '.join(CHANNEL_MODES)}")
        return replace(self, **clean)
