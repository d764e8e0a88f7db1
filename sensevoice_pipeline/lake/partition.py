"""One day of raw audio: ``<raw_root>/date=YYYY-MM-DD/**`` and its optional ``manifest.csv``.

Every file under the partition becomes exactly one work item, and so exactly one `recordings` row: files that
cannot be processed (unsupported format, a symlink leaving the raw root, a bad manifest row) carry the reason
instead of being skipped.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sensevoice_pipeline.constants import CHANNEL_MODES
from sensevoice_pipeline.errors import ConfigurationError, RetryLaterError
from sensevoice_pipeline.lake.arrival import check_date, partition_path
from sensevoice_pipeline.lake.storage import Root, ScannedFile, as_root
from sensevoice_pipeline.speech.audio import unsupported_reason
from sensevoice_pipeline.speech.languages import LANGUAGES

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("path", "language", "channel_mode")
# Hidden files, and markers such as _SUCCESS (the sensor's ready marker), are not recordings (storage's listings
# skip NOT_DATA_PREFIXES).


class PartitionError(ConfigurationError):
    """The day's partition cannot be planned (missing, unreadable manifest); a ValueError too."""


class PartitionMissingError(RetryLaterError, PartitionError):
    """The day's partition is not there (yet): late data, exit code 75."""


@dataclass(frozen=True)
class WorkItem:
    source_path: str  # relative to the raw root, e.g. date=2026-11-22/queue-a/call-1.wav
    language: str
    channel_mode: str
    metadata: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # set: the file is recorded as failed with this reason, not decoded
    stamp: str | None = (
        None  # size and modification time when the day was planned (publish checks them again)
    )

    @property
    def recording_id(self) -> str:
        """Stable across re-runs, so a re-run replaces rows instead of adding new ones."""
        return hashlib.sha256(self.source_path.encode("utf-8")).hexdigest()[:20]

    def to_dict(self) -> dict:
        return {
            "source_path": self.source_path,
            "language": self.language,
            "channel_mode": self.channel_mode,
            "metadata": self.metadata,
            "problem": self.problem,
            "stamp": self.stamp,
        }

    @classmethod
    def from_dict(cls, d: dict) -> WorkItem:
        return cls(
            d["source_path"],
            d["language"],
            d["channel_mode"],
            dict(d.get("metadata") or {}),
            d.get("problem"),
            d.get("stamp"),
        )


@dataclass(frozen=True)
class FileEntry:
    """One file of a partition as listed: what is wrong with it (None: nothing yet) and its stamp."""

    problem: str | None
    stamp: str | None


def stamp(size: int, mtime_ns: int) -> str:
    """What must not change between planning a day and publishing it: size and modification time."""
    return f"{size} bytes, modified {mtime_ns}"


def partition_dir(raw_root: str | Path | Root, date: str) -> Root:
    return partition_path(raw_root, date)  # a LocalRoot, or an s3:// ObjectPath


def list_work(
    raw_root: str | Path | Root, date: str, default_language: str, default_channel_mode: str
) -> list[WorkItem]:
    """All files of the day (sorted), with the manifest's hints applied; manifest rows naming files that are not
    there, or paths leaving the partition, are work items that fail with the reason. The same items whether the
    partition is a local folder or an s3:// prefix (the root's ``scan``)."""
    root = as_root(raw_root)
    part = partition_dir(root, date)
    scanned = part.scan(root)
    if scanned is None:
        part.check_reachable()  # an s3:// bucket that does not exist is a mistake, not a missing day
        raise PartitionMissingError(f"no partition for {check_date(date)}: {part} does not exist")
    manifest = _read_manifest_at(part / MANIFEST) if MANIFEST in scanned else {}
    files = {rel: _file_entry(rel, f) for rel, f in scanned.items() if rel != MANIFEST}
    return work_items(part.name, files, manifest, default_language, default_channel_mode)


def _file_entry(rel: str, scanned: ScannedFile) -> FileEntry:
    if scanned.size is None:
        return FileEntry(scanned.problem or "file vanished", None)
    return FileEntry(scanned.problem or unsupported_reason(rel), stamp(scanned.size, scanned.mtime_ns))


def work_items(
    part_name: str,
    files: dict[str, FileEntry],
    manifest: dict[str, dict],
    default_language: str,
    default_channel_mode: str,
) -> list[WorkItem]:
    """The day's work items, wherever its files live: one per file (``files``: path in the partition -> what is
    wrong with the file itself and its stamp) with the manifest's hints, plus a failing one per manifest row that
    names no file."""
    items = [
        _work_item(part_name, rel, entry, manifest.get(rel, {}), default_language, default_channel_mode)
        for rel, entry in files.items()
    ]
    for rel, row in manifest.items():
        if rel not in files:
            problem = row.get("_problem") or f"listed in {MANIFEST} but not found in the partition"
            items.append(
                WorkItem(
                    f"{part_name}/{rel}",
                    row.get("language") or default_language,
                    default_channel_mode,
                    _metadata(row),
                    problem,
                )
            )
    return sorted(items, key=lambda i: i.source_path)


def _work_item(
    part_name: str, rel: str, entry: FileEntry, row: dict, default_language: str, default_channel_mode: str
) -> WorkItem:
    language = (row.get("language") or default_language).strip().lower()
    channel_mode = (row.get("channel_mode") or default_channel_mode).strip().lower()
    problem = row.get("_problem") or entry.problem
    if problem is None and language not in LANGUAGES:
        problem = f"unknown language {language!r} in {MANIFEST}: expected one of {', '.join(LANGUAGES)}"
    if problem is None and channel_mode not in CHANNEL_MODES:
        problem = (
            f"unknown channel_mode {channel_mode!r} in {MANIFEST}: expected one of {', '.join(CHANNEL_MODES)}"
        )
    return WorkItem(f"{part_name}/{rel}", language, channel_mode, _metadata(row), problem, entry.stamp)


def read_manifest(path: Path) -> dict[str, dict]:
    """``path`` -> row. Paths are relative to the partition; rows whose path leaves it are kept with a problem."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise PartitionError(
                    f"{path}: needs a 'path' column (and optionally language, channel_mode, ...)"
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PartitionError(f"{path}: unreadable manifest ({exc})") from exc
    manifest = {}
    for row in rows:
        raw = (row.get("path") or "").strip()
        key = Path(raw).as_posix()  # also drops a leading "./"
        if not raw or Path(raw).is_absolute() or ".." in Path(raw).parts:
            key = raw or "(empty path)"
            row = {**row, "_problem": f"manifest path {raw!r} leaves the partition; refusing to read it"}
        manifest[key] = {k: (v or "").strip() for k, v in row.items() if k is not None}
    return manifest


def _metadata(row: dict) -> dict[str, str]:
    return {k: v for k, v in row.items() if k not in MANIFEST_COLUMNS and not k.startswith("_") and v}


def _read_manifest_at(path: Root) -> dict[str, dict]:
    """read_manifest on the file opened the checked way (an s3:// object: a temp copy); messages name the manifest
    itself, not the copy."""
    with path.fetch() as local:
        try:
            return read_manifest(local.path)
        except PartitionError as exc:
            raise PartitionError(str(exc).replace(str(local.path), str(path))) from exc
