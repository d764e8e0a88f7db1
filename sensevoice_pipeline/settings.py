"""The one configuration object: where data and models live, which Airflow Connections to use, and how the daily
job runs. Defaults, overridden by environment variables (``Settings.from_env``), then by explicit arguments (CLI
flags, DAG Params). The CLI builds it with ``Settings.from_env``; DAG tasks and the plugin page with
``provider.hooks.airflow_settings``, which adds what the named Connections say (Triton address, S3 credentials)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace
from pathlib import Path

from sensevoice_pipeline.constants import (
    CHANNEL_MODES,
    DEFAULT_MAX_SEGMENT_S,
    DEFAULT_MERGE_SEGMENT_S,
    DEFAULT_USE_ITN,
)
from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.lake.storage import (
    LocalRoot,
    Root,
    StorageError,
    as_root,
    default_warehouse,
    local_only,
    root_text,
)
from sensevoice_pipeline.serving.client import default_url
from sensevoice_pipeline.speech.languages import LANGUAGES, UnknownLanguageError, language_id
from sensevoice_pipeline.speech.redact import DEFAULT_REDACT, REDACT_POLICIES


class RootError(ConfigurationError, StorageError):
    """A raw or lake root that cannot work (unsupported URI, no bucket): one line for
    the user, and still the StorageError that ``storage.as_root`` raises for a bad URI."""


@dataclass(frozen=True)
class Settings:
    # The roots are local dirs or s3://bucket/prefix URIs (storage.as_root chooses; credentials: AWS_* environment).
    raw_root: Root = LocalRoot("var/raw")  # raw/date=YYYY-MM-DD/**.{wav,flac,mp3,ogg,...} (+ manifest.csv)
    lake_root: Root = LocalRoot("var/lake")  # data/main/<table>/date=YYYY-MM-DD/*.parquet (catalog.py)
    # DuckDB file, always on local disk; default <lake_root>/warehouse.duckdb, or for an s3:// lake
    # var/warehouse/<bucket>/<prefix>/warehouse.duckdb (storage.default_warehouse)
    warehouse: Path | None = None
    triton_url: str = "127.0.0.1:8001"
    language: str = "auto"  # default hint when the manifest has none
    use_itn: bool = DEFAULT_USE_ITN
    channel_mode: str = "mono"  # mono: mix down; split: one transcript per channel (agent / customer)
    model_version: str = ""  # pin a `sensevoice` version; "" = what the server serves
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S  # SVP_MAX_SEGMENT_S: the daily job and the release canary
    # SVP_MERGE_SEGMENT_S: adjacent VAD segments of a channel joined into one request up to this long (never past
    # max_segment_s); 0 = off
    merge_segment_s: float = DEFAULT_MERGE_SEGMENT_S
    # SVP_MAX_RECORDING_S: a longer recording becomes a `failed` row, refused while it decodes (a few MB of FLAC can
    # hold 20 hours of silence: gigabytes decoded)
    max_recording_s: float = 4 * 3600.0
    # A re-run that would replace a published day with fewer than this share of its recordings (an emptied
    # partition, files lost upstream) refuses unless told to (allow_shrink; SVP_SHRINK_LIMIT)
    shrink_limit: float = 0.5
    allow_shrink: bool = False
    batch_size: int = 16  # files per mapped task
    concurrency: int = 8  # Triton requests in flight per task
    request_timeout_s: float = 120.0  # deadline of one Triton request (SVP_REQUEST_TIMEOUT_S)
    # Share of a day's files that may fail (bad input) before the run ends failed; the day is published anyway.
    failure_budget: float = 0.2
    # The DuckLake catalog of the lake's tables (SVP_CATALOG): a SQLite file path (one host), or a PostgreSQL database
    # every host reaches (postgresql://user@host:5432/db); default <lake_root>/catalog.sqlite for a local lake, none
    # for an s3:// lake (lake/catalog_db.py)
    catalog: str | None = None
    lease_ttl_s: float = 3600.0  # a run holds its date this long after its last heartbeat (SVP_LEASE_TTL_S)
    # Superseded lake files and abandoned staging are deleted this long after they stopped being current, so a
    # reader that started on an older snapshot can finish (SVP_GC_GRACE_S).
    gc_grace_s: float = 86400.0
    # The Triton model repository (SVP_MODEL_REPOSITORY): the release DAG, `svp models` and the page read it.
    model_repository: Path = Path("model_repository")
    # The canary's golden set (SVP_GOLDEN_DIR): clips + expected.jsonl; None: the fixture model's clips.
    golden_dir: Path | None = None
    # Airflow Connections (names; only DAG tasks and the plugin look them up): the Triton address, S3 credentials.
    triton_conn_id: str = "sensevoice_triton"  # SVP_TRITON_CONN_ID
    aws_conn_id: str = "aws_default"  # SVP_AWS_CONN_ID
    # What a DAG run's Params may point at beyond this deployment's own settings (check_run_params): root prefixes
    # (SVP_ALLOWED_ROOTS, comma-separated, e.g. s3://calls/,/mnt/backfill/) and Connection ids
    # (SVP_ALLOWED_CONNECTIONS). Empty: only the configured roots (and below them) and Connections.
    allowed_roots: tuple[str, ...] = ()
    allowed_connections: tuple[str, ...] = ()
    # PII in transcripts (SVP_REDACT; speech/redact.py), applied before any row is written: off, mask (each card,
    # phone number, e-mail address or long digit run becomes [CARD] / [PHONE] / [EMAIL] / [NUMBER]) or drop (a text
    # with any of them becomes [REDACTED]).
    redact: str = DEFAULT_REDACT

    def __post_init__(self) -> None:
        # The roots' kind (local or s3://) is chosen here, once: every path derived from them keeps it.
        for key in ("raw_root", "lake_root"):
            object.__setattr__(self, key, as_root(getattr(self, key)))

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse or default_warehouse(self.lake_root)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        given = {key for key, value in overrides.items() if value is not None and value != ""}

        def checked_env(key: str, variable: str, default):
            """The variable's value for ``key``, checked like an override (its errors name the variable); unset,
            empty or overridden: ``default``, so that a flag can stand in for a bad variable."""
            value = env.get(variable, "").strip()  # an empty variable means unset
            return default if key in given or not value else _checked(key, value, variable)

        base = cls(
            raw_root=checked_env("raw_root", "SVP_RAW_ROOT", cls.raw_root),
            lake_root=checked_env("lake_root", "SVP_LAKE_ROOT", cls.lake_root),
            warehouse=checked_env("warehouse", "SVP_WAREHOUSE", None),
            triton_url=default_url(),
            language=checked_env("language", "SVP_LANGUAGE", cls.language),
            channel_mode=checked_env("channel_mode", "SVP_CHANNEL_MODE", cls.channel_mode),
            request_timeout_s=checked_env(
                "request_timeout_s", "SVP_REQUEST_TIMEOUT_S", cls.request_timeout_s
            ),
            max_segment_s=checked_env("max_segment_s", "SVP_MAX_SEGMENT_S", cls.max_segment_s),
            merge_segment_s=checked_env("merge_segment_s", "SVP_MERGE_SEGMENT_S", cls.merge_segment_s),
            failure_budget=checked_env("failure_budget", "SVP_FAILURE_BUDGET", cls.failure_budget),
            max_recording_s=checked_env("max_recording_s", "SVP_MAX_RECORDING_S", cls.max_recording_s),
            shrink_limit=checked_env("shrink_limit", "SVP_SHRINK_LIMIT", cls.shrink_limit),
            catalog=checked_env("catalog", "SVP_CATALOG", None),
            lease_ttl_s=checked_env("lease_ttl_s", "SVP_LEASE_TTL_S", cls.lease_ttl_s),
            gc_grace_s=checked_env("gc_grace_s", "SVP_GC_GRACE_S", cls.gc_grace_s),
            redact=checked_env("redact", "SVP_REDACT", cls.redact),
            model_repository=Path(env.get("SVP_MODEL_REPOSITORY") or cls.model_repository),
            golden_dir=Path(env["SVP_GOLDEN_DIR"]) if env.get("SVP_GOLDEN_DIR") else None,
            triton_conn_id=env.get("SVP_TRITON_CONN_ID") or cls.triton_conn_id,
            aws_conn_id=env.get("SVP_AWS_CONN_ID") or cls.aws_conn_id,
            allowed_roots=_listed(env.get("SVP_ALLOWED_ROOTS")),
            allowed_connections=_listed(env.get("SVP_ALLOWED_CONNECTIONS")),
        )
        return base.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> Settings:
        """Apply the overrides that are set (None and "" mean: keep the current value). Roots, warehouse, default
        language and channel mode are checked here, before any work: ConfigurationError (a ValueError) if they
        cannot work."""
        clean = {k: v for k, v in overrides.items() if v is not None and v != ""}
        for key in _CHECKED:
            if key in clean:
                clean[key] = _checked(key, clean[key])
        return replace(self, **clean)


# A run's Params that choose where data is read and written, or with whose credentials (check_run_params).
ROOT_PARAMS = {
    "raw_root": "SVP_RAW_ROOT",
    "lake_root": "SVP_LAKE_ROOT",
    "model_repository": "SVP_MODEL_REPOSITORY",
    "golden_dir": "SVP_GOLDEN_DIR",
}
CONNECTION_PARAMS = ("triton_conn_id", "aws_conn_id")


class ParamNotAllowedError(ConfigurationError):
    """A DAG Param points at a root or a Connection this deployment does not allow."""


def check_run_params(base: Settings, overrides: dict) -> None:
    """Refuse a run's Params that name a root or a Connection beyond what the deployment allows: whoever may trigger
    a DAG must not thereby read or write another bucket or folder, or borrow another Connection's credentials.
    Allowed: the deployment's own values (a root: also anything below it) and what SVP_ALLOWED_ROOTS /
    SVP_ALLOWED_CONNECTIONS list."""
    for key, variable in ROOT_PARAMS.items():
        value = overrides.get(key)
        if value in (None, ""):
            continue
        own = getattr(base, key)
        allowed = [root_text(r) for r in ([own] if own is not None else []) + list(base.allowed_roots)]
        wanted = root_text(value)
        if any(wanted == a or wanted.startswith(a.rstrip("/") + "/") for a in allowed):
            continue
        raise ParamNotAllowedError(
            f"the Param {key}={value!r} is outside what this deployment allows ({variable}"
            f"={own}, SVP_ALLOWED_ROOTS={','.join(base.allowed_roots) or 'unset'})"
        )
    for key in CONNECTION_PARAMS:
        value = overrides.get(key)
        if value not in (None, "") and value != getattr(base, key) and value not in base.allowed_connections:
            raise ParamNotAllowedError(
                f"the Param {key}={value!r} names a Connection this deployment does not allow "
                f"(default {getattr(base, key)}; SVP_ALLOWED_CONNECTIONS="
                f"{','.join(base.allowed_connections) or 'unset'})"
            )


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


TRITON_POOL_ENV = "SVP_TRITON_POOL"
DEFAULT_TRITON_POOL = "sensevoice_triton"


def triton_pool() -> str:
    """The Airflow pool whose slots the daily DAG's transcription tasks take ($SVP_TRITON_POOL, default
    sensevoice_triton). Read when the DAG file is parsed: a task's pool is not a templated field, so a Param cannot
    choose it per run."""
    return os.environ.get(TRITON_POOL_ENV, "").strip() or DEFAULT_TRITON_POOL


BATCH_TIMEOUT_ENV = "SVP_BATCH_TIMEOUT_S"
DEFAULT_BATCH_TIMEOUT_S = 3 * 3600.0


def batch_timeout_s() -> float:
    """How long one transcription task may run ($SVP_BATCH_TIMEOUT_S, default 3 hours: a batch of 16 recordings of
    up to SVP_MAX_RECORDING_S each, on a busy fleet). Read when the DAG file is parsed (a task's timeout is not a
    Param)."""
    value = os.environ.get(BATCH_TIMEOUT_ENV, "").strip()
    return (
        _checked_number(value, BATCH_TIMEOUT_ENV, "the batch timeout (seconds)", 1.0, 7 * 86400.0)
        if value
        else DEFAULT_BATCH_TIMEOUT_S
    )


DAILY_START_DATE_ENV = "SVP_DAILY_START_DATE"
DEFAULT_DAILY_START_DATE = "2026-11-01"


def daily_start_date() -> str:
    """The first day the daily DAG processes ($SVP_DAILY_START_DATE, YYYY-MM-DD): a new deployment's scheduler
    catches up from there, one run per day. Read when the DAG file is parsed (a DAG's start date is not a Param)."""
    value = os.environ.get(DAILY_START_DATE_ENV, "").strip() or DEFAULT_DAILY_START_DATE
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ConfigurationError(
            f"{DAILY_START_DATE_ENV}: not a date: {value!r} (expected YYYY-MM-DD)"
        ) from exc


def _local(value, refusal: str) -> Path:
    try:
        return local_only(value, "")
    except StorageError as exc:
        raise ConfigurationError(refusal) from exc


def _check_duckdb_path(path: Path, where: str) -> Path:
    """DuckDB reads what follows a '?' in a database path as connection options, and then cannot write the file."""
    if "?" in str(path):
        raise RootError(
            f"{where}{str(path)!r} contains '?', which DuckDB cannot have in a database file's path; "
            "use a path without it"
        )
    return path


_CHECKED = (
    "raw_root",
    "lake_root",
    "warehouse",
    "language",
    "channel_mode",
    "model_repository",
    "golden_dir",
    "max_segment_s",
    "merge_segment_s",
    "request_timeout_s",
    "failure_budget",
    "lease_ttl_s",
    "gc_grace_s",
    "catalog",
    "max_recording_s",
    "shrink_limit",
    "redact",
)

# Numeric knobs: (what it is, lowest, highest, whether the lowest itself is allowed); finite always.
_NUMBERS = {
    "request_timeout_s": ("the request deadline (seconds)", 0.0, 86400.0, False),
    "failure_budget": ("the failure budget (a share of the day's files)", 0.0, 1.0, True),
    "lease_ttl_s": ("the lease lifetime (seconds)", 0.0, 7 * 86400.0, False),
    "gc_grace_s": ("the garbage-collection grace period (seconds)", 0.0, 365 * 86400.0, True),
    "max_recording_s": ("the longest recording (seconds)", 0.0, 7 * 86400.0, False),
    "shrink_limit": ("the shrink limit (a share of the published recordings)", 0.0, 1.0, True),
}


def _checked_number(
    value, variable: str | None, what: str, low: float, high: float, low_allowed: bool = False
) -> float:
    """``value`` as a finite number within [low, high] (low excluded unless ``low_allowed``), or ConfigurationError
    naming ``variable``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (low <= number <= high) or (number == low and not low_allowed):  # NaN fails every comparison
        bound = "at least" if low_allowed else "more than"
        where = f"{variable}: " if variable else ""
        raise ConfigurationError(
            f"{where}{what} must be a number {bound} {low:.10g} and at most {high:.10g}, got {value!r}"
        )
    return number


def _checked(key: str, value, variable: str | None = None):
    """``value`` as Settings keeps field ``key``, or ConfigurationError; ``variable``: the environment variable it
    came from, named in the message."""
    where = f"{variable}: " if variable else ""
    if key in ("raw_root", "lake_root"):
        try:
            root = as_root(value)
        except StorageError as exc:
            raise RootError(f"{where}{exc}") from exc
        if key == "lake_root" and root.local_path is not None:
            _check_duckdb_path(root, where)  # the catalog and the warehouse file live in it
        return root
    if key == "warehouse":
        return _check_duckdb_path(
            _local(value, f"{where}the DuckDB warehouse is a local file, not {value}"), where
        )
    if key == "language":
        try:
            language_id(value)
        except UnknownLanguageError as exc:
            raise UnknownLanguageError(
                f"{where}unknown default language {value!r}: expected one of {', '.join(LANGUAGES)}"
            ) from exc
        return str(value).strip().lower()
    if key == "max_segment_s":
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not 1.0 <= seconds <= 30.0:  # SenseVoiceSmall's attention is trained on at most ~30 s
            raise ConfigurationError(
                f"{where}max segment length must be between 1 and 30 seconds, got {value!r}"
            )
        return seconds
    if key == "merge_segment_s":
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not (seconds == 0.0 or 1.0 <= seconds <= 30.0):  # 0: off; above 30 s max_segment_s caps it anyway
            raise ConfigurationError(
                f"{where}merge segment length must be 0 (off) or between 1 and 30 seconds, got {value!r}"
            )
        return seconds
    if key in _NUMBERS:
        what, low, high, low_allowed = _NUMBERS[key]
        return _checked_number(value, variable, what, low, high, low_allowed)
    if key == "catalog":
        from sensevoice_pipeline.lake.catalog_db import (  # pyarrow: not for --help
            CatalogError,
            catalog_database,
        )

        try:
            catalog_database(value, LocalRoot("."))  # the form only: which lake it serves is checked by Lake
        except CatalogError as exc:
            raise ConfigurationError(f"{where}{exc}") from exc
        return str(value).strip()
    if key in ("model_repository", "golden_dir"):
        return _local(value, f"{where}{key.replace('_', ' ')} must be a local directory, not {value}")
    if key == "redact":
        policy = str(value).strip().lower()
        if policy not in REDACT_POLICIES:
            raise ConfigurationError(
                f"{where}unknown redaction policy {value!r}: expected one of {', '.join(REDACT_POLICIES)}"
            )
        return policy
    if key == "channel_mode":
        mode = str(value).strip().lower()
        if mode not in CHANNEL_MODES:
            raise ConfigurationError(
                f"{where}unknown channel mode {value!r}: expected one of {', '.join(CHANNEL_MODES)}"
            )
        return mode
    return value
