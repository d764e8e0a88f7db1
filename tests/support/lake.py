"""Reading a lake as the tests compare it: its rows without the columns that name the run, readable differences
between two reads, and a reader process that checks every look it takes while a date is re-published."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa

# Columns that name the run rather than the data: they differ between two runs of the same date.
RUN_COLUMNS = ("run_id", "processed_at", "started_at", "finished_at")


def rows_without_run(table: pa.Table) -> list[dict]:
    """The rows, without the columns that name the run or its times."""
    return table.select([c for c in table.column_names if c not in RUN_COLUMNS]).to_pylist()


def table_rows(lake: Path, table: str, date: str, catalog: Path | None = None) -> list[dict]:
    """One table's rows of ``date`` in the lake at ``lake``, without the run's columns."""
    from sensevoice_pipeline.lake.catalog import Lake

    return rows_without_run(Lake(lake, catalog).read(table, date))


def lake_snapshot(lake: Path, dates: list[str]) -> dict:
    """Every daily table's rows of each of ``dates``, without the run's columns."""
    from sensevoice_pipeline.lake import tables

    return {(t, d): table_rows(lake, t, d) for t in tables.DAILY_TABLES for d in dates}


def lake_state(settings) -> tuple:
    """Everything a reader can see of the lake: the snapshot id and every table's rows."""
    from sensevoice_pipeline.lake import tables
    from sensevoice_pipeline.lake.catalog import Lake

    lake = Lake(settings.lake_root)
    return lake.snapshot_id(), {t: lake.read(t).to_pylist() for t in tables.DAILY_TABLES}


def differences(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> list[str]:
    """Readable differences between two snapshots of the tables (row by row, field by field)."""
    out = []
    for table in before:
        if len(before[table]) != len(after[table]):
            out.append(f"{table}: {len(before[table])} rows before, {len(after[table])} after")
            continue
        for old, new in zip(before[table], after[table]):
            out += [
                f"{table} {old.get('source_path', '')}: {k} {old[k]!r} -> {new[k]!r}"
                for k in old
                if old[k] != new[k]
            ]
    return out


def confident_utterance(i: int, emotion: str, confidence: float | None) -> dict:
    """An utterance row of recording ``r<i>`` with an emotion confidence (and its one-entry distribution), or none."""
    return {
        "recording_id": f"r{i}",
        "source_path": f"date=x/{i}.wav",
        "channel": 0,
        "segment_index": 0,
        "start_s": 0.0,
        "end_s": 2.0,
        "language": "en",
        "emotion": emotion,
        "event": "speech",
        "text": "t",
        "raw_text": "t",
        "model_version": "1",
        "emotion_confidence": confidence,
        "emotion_probs": None if confidence is None else {emotion: confidence},
    }


def lease_settings(tmp_path: Path, catalog: str, ttl_s: float = 3600.0, triton_url: str = "127.0.0.1:1"):
    """Settings of a run under ``tmp_path`` whose lake's catalog is ``catalog`` and whose leases last ``ttl_s``."""
    from sensevoice_pipeline.settings import Settings

    return Settings(
        raw_root=tmp_path / "raw",
        lake_root=tmp_path / "lake",
        catalog=catalog,
        lease_ttl_s=ttl_s,
        triton_url=triton_url,
    )


def runs_table(run_id: str) -> pa.Table:
    """A runs row of ``run_id`` that did nothing, started and finished now."""
    from sensevoice_pipeline.lake import tables

    now = dt.datetime.now(dt.UTC)
    return tables.to_table(
        [
            {
                "run_id": run_id,
                "started_at": now,
                "finished_at": now,
                "files": 0,
                "files_ok": 0,
                "files_failed": 0,
                "utterances": 0,
                "speech_seconds": 0.0,
                "model_versions": "",
            }
        ],
        tables.RUNS,
    )


def assert_complete(settings, date: str) -> None:
    """No gaps (every listed work item has its row) and no duplicates, in recordings and utterances."""
    from sensevoice_pipeline.lake.partition import list_work

    recordings = table_rows(settings.lake_root, "recordings", date)
    paths = [r["source_path"] for r in recordings]
    assert len(paths) == len(set(paths))
    assert set(paths) == {i.source_path for i in list_work(settings.raw_root, date, "auto", "mono")}
    utterances = table_rows(settings.lake_root, "utterances", date)
    keys = [(u["recording_id"], u["channel"], u["segment_index"]) for u in utterances]
    assert len(keys) == len(set(keys))
    per_recording = {r["recording_id"]: r["n_segments"] for r in recordings}
    assert {k: sum(1 for u in keys if u[0] == k) for k in per_recording} == per_recording


def staged_runs(settings, date: str) -> list[str]:
    """The runs of ``date`` that have a staging folder left in the lake."""
    from sensevoice_pipeline.jobs import daily

    stage = settings.lake_root / daily.STAGING / f"date={date}"
    return sorted(p.name for p in stage.iterdir()) if stage.is_dir() else []


# A reader as a BI user's would be: the warehouse file, the catalog attached, one read transaction per look. Every
# look checks that the date's four tables come from one run and agree with each other.
READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from sensevoice_pipeline.warehouse.database import Warehouse
    lake, date, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    seen, errors, n = {}, [], 0
    while not stop.exists():
        try:
            con = Warehouse(lake).connect()
            try:
                con.execute("BEGIN")
                q = lambda sql: con.execute(sql, [date]).fetchall()
                (run, files, utt), = q("SELECT run_id, files, utterances FROM runs WHERE date = ?")
                runs_u = {r for r, in q("SELECT DISTINCT run_id FROM utterances WHERE date = ?")}
                runs_r = {r for r, in q("SELECT DISTINCT run_id FROM recordings WHERE date = ?")}
                (n_u, itn), = q("SELECT count(*), string_agg(DISTINCT itn::VARCHAR, ',') FROM utterances WHERE date = ?")
                (n_r,), = q("SELECT count(*) FROM recordings WHERE date = ?")
                (rolled,), = q("SELECT sum(utterances) FROM emotion_daily WHERE date = ?")
                con.execute("COMMIT")
            finally:
                con.close()
            if runs_u != {run} or runs_r != {run} or (n_u, n_r, rolled) != (utt, files, utt):
                errors.append(f"mixed day: runs={run} utterances={runs_u} recordings={runs_r} "
                              f"counts={(n_u, n_r, rolled)} vs {(utt, files)}")
            seen[run] = itn
        except Exception as exc:  # noqa: BLE001 -- every error is what the test looks for
            errors.append(f"{type(exc).__name__}: {exc}")
        n += 1
        if n == 1:
            print("ready", flush=True)
    print(json.dumps({"iterations": n, "seen": seen, "errors": errors[:5], "n_errors": len(errors)}), flush=True)
    """
)


def start_reader(lake: Path, date: str, stop: Path) -> subprocess.Popen:
    """The reader process on ``date`` of ``lake``, once it has taken its first look; it stops when ``stop`` exists."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(lake), date, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = reader.stdout.readline().strip()
    assert first == "ready", (first, reader.stderr.read() if reader.poll() is not None else "")
    return reader


def stop_reader(reader: subprocess.Popen, stop: Path) -> dict:
    """Stop the reader; what it saw (it must have seen no error)."""
    stop.touch()
    out, err = reader.communicate(timeout=60)
    assert out.strip(), f"the reader printed nothing (exit {reader.returncode}): {err[-3000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["n_errors"] == 0, (result, err[-3000:])
    return result
