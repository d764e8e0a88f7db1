"""The daily job for one date: plan the day's files into batches, transcribe each batch through Triton into a
staging area, then publish the day's tables in one commit and refresh the DuckDB warehouse.

The Airflow DAG runs these steps as tasks (batches as mapped tasks, `release` as a teardown); `svp run` runs them
in one process. Both call exactly these functions.

The rules they keep (docs/architecture.md):
- faults (errors.py): a bad input file becomes a ``failed`` row with its reason; a serving fault fails the batch
  (the task retries) and nothing of the run is published;
- one run per date at a time (lease.py), from plan to publish;
- publish checks that the partition is still the one planned (paths, sizes, modification times, and the size of
  what was actually read), then replaces the date in all four tables in one DuckLake transaction (catalog.py);
- a raw file is read only if the file actually opened lies inside the raw root (its root's ``fetch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sensevoice_pipeline.errors import (
    ConfigurationError,
    FailureBudgetExceeded,
    InputError,
    PublishError,
    SvpError,
)
from sensevoice_pipeline.jobs.results import Batch, BatchResult, DayPublished
from sensevoice_pipeline.lake import storage, tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.lease import DateLeases, Lease, date_leases
from sensevoice_pipeline.lake.partition import WorkItem, check_date, list_work
from sensevoice_pipeline.serving.client import SenseVoiceClient
from sensevoice_pipeline.serving.recordings import RecordingTranscriber, SegmentAnswer
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.speech.redact import DEFAULT_REDACT, redact_raw, redact_words
from sensevoice_pipeline.speech.tags import TagConfidences, parse
from sensevoice_pipeline.warehouse.database import Warehouse

log = logging.getLogger(__name__)
STAGING = "_staging"
PLAN_FILE = (
    "plan.parquet"  # what the run planned: source_path, stamp (publish checks the partition against it)
)
LEASE_FILE = "lease.json"  # the run's lease token: its tasks present it to renew the lease and to publish


# -- plan ------------------------------------------------------------------------------------------------------------


def staging_dir(settings: Settings, date: str, run_id: str) -> Path:
    safe_run = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return settings.lake_root / STAGING / f"date={date}" / f"run={safe_run}"


def lake(settings: Settings) -> Lake:
    return Lake(settings.lake_root, settings.catalog)


def leases(settings: Settings) -> DateLeases:
    return date_leases(lake(settings).catalog, settings.lease_ttl_s)


def plan(settings: Settings, date: str, run_id: str) -> list[Batch]:
    """Take the date's lease, then the day's work items in batches of ``settings.batch_size`` (``to_dict()`` for
    XCom). Clears this run's staging area so that a re-run of the same run id starts clean, and records the
    plan and the lease token there for publish to check."""
    return plan_with_lease(settings, date, run_id)[1]


def plan_with_lease(
    settings: Settings, date: str, run_id: str, bound_to_process: bool = False
) -> tuple[Lease, list[Batch]]:
    """``plan``, also returning the lease taken (``bound_to_process``: the caller's process is the whole run)."""
    date = check_date(date)
    items = list_work(settings.raw_root, date, settings.language, settings.channel_mode)
    _refuse_silent_shrink(settings, date, len(items))
    # From the lease on, anything that stops the plan (a Ctrl-C or SIGTERM, a full disk) gives the date back: the
    # caller's own guard starts only once this returns. (release gives back only this run's lease and staging, so
    # a date another run holds is left as it is.)
    try:
        lease = leases(settings).acquire(date, run_id, bound_to_process=bound_to_process)
        _stage_plan(settings, date, run_id, items, lease)
        size = max(1, settings.batch_size)
        batches = [
            Batch(date, run_id, lease.token, i // size, [it.to_dict() for it in items[i : i + size]])
            for i in range(0, len(items), size)
        ]
        log.info("%s: %d files in %d batches (run %s)", date, len(items), len(batches), run_id)
    except BaseException:
        release(settings, date, run_id)
        raise
    return lease, batches


def _stage_plan(settings: Settings, date: str, run_id: str, items: list[WorkItem], lease: Lease) -> None:
    """This run's staging area, cleared, holding the plan and the lease token that publish checks."""
    stage = staging_dir(settings, date, run_id)
    stage.remove_tree()
    planned = pa.table(
        {"source_path": [i.source_path for i in items], "stamp": [i.stamp for i in items]},
        schema=pa.schema([("source_path", pa.string()), ("stamp", pa.string())]),
    )
    (stage / PLAN_FILE).write_parquet(planned)
    record_lease(stage, lease)


class ShrinkRefused(ConfigurationError):
    """A re-run would replace a published day with markedly fewer recordings."""


def _refuse_silent_shrink(settings: Settings, date: str, planned: int) -> None:
    """A partition emptied by a retention job, or half lost upstream, must not silently replace what was published:
    an empty partition, or fewer files than ``shrink_limit`` of the published recordings, refuses unless
    ``allow_shrink``."""
    if settings.allow_shrink:
        return
    published = lake(settings).count("recordings", date)
    if published and (planned == 0 or planned < settings.shrink_limit * published):
        utterances = lake(settings).count("utterances", date)
        raise ShrinkRefused(
            f"{date}: the partition holds {planned} recordings, the published day {published} ({utterances} "
            f"utterances); re-running would replace them with {'nothing' if planned == 0 else 'far fewer'}, so "
            f"nothing was done. If the files were removed on purpose, run again with --allow-shrink (the DAG's "
            f"allow_shrink Param); the limit is SVP_SHRINK_LIMIT ({settings.shrink_limit:g} of the published count)"
        )


def release(settings: Settings, date: str, run_id: str) -> None:
    """Give up the date's lease (if this run holds it) and this run's staging: the end of every run, failed or not."""
    date = check_date(date)
    _drop_staging(settings, date, run_id)
    leases(settings).release(date, run_id)


# -- transcribe one batch --------------------------------------------------------------------------------------------


def process_batch(
    settings: Settings,
    batch: Batch | dict,
    started_at: dt.datetime | None = None,
    cancelled: threading.Event | None = None,
) -> BatchResult:
    """Transcribe one batch and write its rows to staging. Triton being unreachable fails the whole batch (so the
    task retries); anything wrong with one file fails only that file's row."""
    batch = Batch.from_dict(batch)  # a DAG task gets it from XCom
    started_at = started_at or _now()
    date_leases = leases(settings)
    lease = date_leases.renew(batch.date, batch.run_id, batch.lease_token)
    items = [WorkItem.from_dict(d) for d in batch.items]
    with date_leases.keep_alive(lease):  # a long batch must not let the lease expire
        recordings, utterances = asyncio.run(
            _process_items(settings, items, batch.run_id, started_at, cancelled)
        )
    out = staging_dir(settings, batch.date, batch.run_id)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"batch-{batch.index:05d}"
    (out / f"{stem}.recordings.parquet").write_parquet(tables.to_table(recordings, tables.RECORDINGS))
    (out / f"{stem}.utterances.parquet").write_parquet(tables.to_table(utterances, tables.UTTERANCES))
    failed = sum(r["status"] == "failed" for r in recordings)
    log.info(
        "batch %d: %d files (%d failed), %d utterances", batch.index, len(items), failed, len(utterances)
    )
    return BatchResult(batch.index, len(recordings), failed, len(utterances))


async def _process_items(
    settings: Settings,
    items: list[WorkItem],
    run_id: str,
    started_at: dt.datetime,
    cancelled: threading.Event | None = None,
):
    """Every item of a batch, a few files at a time; once ``cancelled`` is set (the run is stopping) no further
    file starts and the batch ends with RunCancelled."""
    files_in_flight = asyncio.Semaphore(max(2, settings.concurrency // 2))
    async with SenseVoiceClient(
        settings.triton_url,
        version=settings.model_version or None,
        max_concurrency=settings.concurrency,
        timeout_s=settings.request_timeout_s,
    ) as client:
        await client.check_ready()
        transcriber = RecordingTranscriber(
            client,
            settings.max_segment_s,
            merge_segment_s=settings.merge_segment_s,
            max_recording_s=settings.max_recording_s,
        )

        async def one(item: WorkItem):
            async with files_in_flight:
                if cancelled is not None and cancelled.is_set():
                    raise RunCancelled(f"run {run_id} is stopping")
                return await _process_item(settings, item, run_id, started_at, transcriber)

        results = await asyncio.gather(*(one(item) for item in items))
    recordings = [r for r, _ in results]
    utterances = [u for _, us in results for u in us]
    return recordings, utterances


async def _process_item(settings, item: WorkItem, run_id, started_at, transcriber: RecordingTranscriber):
    record = {
        "recording_id": item.recording_id,
        "source_path": item.source_path,
        "size_bytes": None, "sha256": None, "format": None, "sample_rate": None, "channels": None,
        "duration_s": None, "status": "ok", "error": None, "n_segments": 0,
        "language_hint": item.language, "channel_mode": item.channel_mode, "model_version": None,
        "run_id": run_id, "processed_at": started_at, "metadata": item.metadata,
    }  # fmt: skip
    if item.problem:
        return _failed(record, item.problem), []
    try:
        info, channels = await _fetch_and_decode(settings, item, record, transcriber)
        transcript = await transcriber.transcribe_channels(info, channels, item.language, settings.use_itn)
    except (InputError, OSError) as exc:  # the file's fault; a ServingError is not caught: the task fails
        return _failed(record, str(exc)), []
    record.update(
        n_segments=len(transcript.segments), model_version=",".join(transcript.model_versions) or None
    )
    rows = [_utterance_row(item, s, run_id, started_at, settings.redact) for s in transcript.segments]
    return record, rows


async def _fetch_and_decode(
    settings: Settings, item: WorkItem, record: dict, transcriber: RecordingTranscriber
):
    """Fetch and decode one file, filling in what the recordings row says about it (also when it then fails)."""
    # A local file is opened once, checked to lie inside the raw root, and decoded through that descriptor; an
    # s3:// object is decoded from a local temp copy (size and sha256 computed while it downloads).
    local = await asyncio.to_thread((settings.raw_root / item.source_path).fetch, settings.raw_root)
    try:
        record["size_bytes"], record["sha256"] = local.size, local.sha256
        info, channels = await transcriber.decode(local.path, item.channel_mode == "split", local.name)
    finally:
        local.release()  # the temp copy goes (the descriptor closes) as soon as the samples are in memory
    record.update(
        format=info.format,
        sample_rate=info.sample_rate,
        channels=info.channels,
        duration_s=round(info.duration_s, 3),
    )
    return info, channels


def _utterance_row(
    item: WorkItem, segment: SegmentAnswer, run_id: str, started_at, redact: str = DEFAULT_REDACT
) -> dict:
    """One segment's answer as an utterances row. PII is redacted here, under the ``redact`` policy, before the row
    exists: ``raw_text`` keeps its tags with only the text redacted, ``text`` is made from that, and every table
    derived from utterances (staging, rollups, exports) only ever sees the redacted text."""
    seg, answer = segment.segment, segment.answer
    redaction = redact_raw(answer.text, redact)
    tags = parse(redaction.text)
    return {
        "recording_id": item.recording_id,
        "source_path": item.source_path,
        "channel": seg.channel,
        "segment_index": seg.index,
        "start_s": round(seg.start_s, 3),
        "end_s": round(seg.end_s, 3),
        "language": tags.language,
        "language_hint": item.language,
        "emotion": tags.emotion,
        "event": tags.event,
        "itn": tags.itn,
        "text": tags.text,
        "raw_text": redaction.text,
        "model_name": answer.model_name,
        "model_version": answer.model_version,
        "run_id": run_id,
        "processed_at": started_at,
        **_confidence_columns(answer.confidences),
        "redactions": redaction.count,
        "words": _word_rows(answer, seg.start_s, redact),
    }


def _word_rows(answer, offset_s: float, redact: str) -> list[dict] | None:
    """The segment's word times from the start of the recording, redacted like its text; None without WORDS."""
    if answer.words is None:
        return None
    words = (w.shifted(offset_s) for w in redact_words(parse(answer.text).text, answer.words, redact))
    return [{"word": w.word, "start_s": w.start_s, "end_s": w.end_s} for w in words]


def _confidence_columns(confidences: TagConfidences) -> dict:
    """The utterance's confidence columns (tables.UTTERANCES); None where the model version returned none."""
    return {
        "language_confidence": confidences.language,
        "emotion_confidence": confidences.emotion,
        "event_confidence": confidences.event,
        "emotion_probs": confidences.emotion_map(),
    }


def _failed(record: dict, reason: str) -> dict:
    log.warning("%s failed: %s", record["source_path"], reason)
    return {**record, "status": "failed", "error": reason}


# -- publish ---------------------------------------------------------------------------------------------------------


def publish(
    settings: Settings,
    date: str,
    run_id: str,
    started_at: dt.datetime | None = None,
    on_published: Callable[[DayPublished], None] | None = None,
) -> DayPublished:
    """Replace the date in every table with this run's staged rows in one commit, update the warehouse, and clear
    the staging area. Re-publishing a date gives the same rows, never duplicates. Raises PublishError (nothing
    published) when the partition changed since it was planned or the run lost its lease, and
    FailureBudgetExceeded (after publishing) when too many files failed. ``on_published`` is called with what was
    published once it is, before the failure budget is checked (the DAG's metrics count a day over its budget)."""
    date = check_date(date)
    stage = staging_dir(settings, date, run_id)
    token = _lease_token(stage, date)
    date_leases = leases(settings)
    lease = date_leases.renew(date, run_id, token)
    recordings = _read_staged(stage, "recordings", tables.RECORDINGS)
    utterances = _read_staged(stage, "utterances", tables.UTTERANCES)
    verify_plan(settings, date, stage, recordings)
    recordings, utterances = _sorted(recordings, "recordings"), _sorted(utterances, "utterances")
    summary = _run_summary(run_id, recordings, utterances, started_at)
    day = {
        "utterances": utterances,
        "recordings": recordings,
        **tables.rollups(utterances, recordings),
        "runs": tables.to_table([summary], tables.RUNS),
    }
    grace = dt.timedelta(seconds=settings.gc_grace_s)
    # The lease is checked again inside the commit: on a SQLite catalog under the writer lock that a takeover also
    # takes, on PostgreSQL by the catalog's trigger, in the commit's own transaction (lease.py).
    snapshot = lake(settings).commit_day(
        date,
        day,
        before_commit=lambda: date_leases.renew(date, run_id, token),
        collect_garbage_older_than=grace,
        commit_info=lease.commit_info,
    )
    Warehouse(settings.lake_root, settings.warehouse_path, settings.catalog).refresh()
    release(settings, date, run_id)
    _drop_stale_staging(settings, grace)
    result = DayPublished(
        date=date,
        snapshot=snapshot,
        **{k: v for k, v in summary.items() if k not in ("started_at", "finished_at")},
    )
    log.info("published %s: %s", date, result)
    if on_published is not None:
        on_published(result)
    _check_failure_budget(result, settings.failure_budget)
    return result


def record_lease(stage, lease: Lease) -> None:
    """Keep the run's lease token in its staging area, where its tasks (and publish) find it."""
    (stage / LEASE_FILE).write_atomic(json.dumps({"lease_token": lease.token}))


def _lease_token(stage, date: str) -> str:
    try:
        return json.loads((stage / LEASE_FILE).read_bytes())["lease_token"]
    except FileNotFoundError:
        raise PublishError(
            f"{date}: this run's staging area is gone ({stage}), so it holds no lease and has nothing "
            "to publish: re-run the date"
        ) from None


def verify_plan(settings: Settings, date: str, stage, recordings: pa.Table) -> None:
    """The partition must still be the one planned (the same paths, sizes and modification times), and every file
    must have been read at its planned size; else PublishError naming what changed."""
    planned = dict(zip(*(stage / PLAN_FILE).read_parquet().to_pydict().values()))
    now = {
        i.source_path: i.stamp
        for i in list_work(settings.raw_root, date, settings.language, settings.channel_mode)
    }
    staged = {
        r["source_path"]: r["size_bytes"]
        for r in recordings.select(["source_path", "size_bytes"]).to_pylist()
    }
    changes = [f"added {p}" for p in sorted(now.keys() - planned.keys())]
    changes += [f"removed {p}" for p in sorted(planned.keys() - now.keys())]
    changes += [
        f"changed {p} ({planned[p]} -> {now[p]})"
        for p in sorted(planned.keys() & now.keys())
        if planned[p] != now[p]
    ]
    changes += [
        f"changed while read {p} (read {size} bytes, planned {planned[p]})"
        for p, size in sorted(staged.items())
        if p in planned and size is not None and planned[p] and not planned[p].startswith(f"{size} bytes")
    ]
    changes += [f"no transcription result for {p}" for p in sorted(planned.keys() - staged.keys())]
    if changes:
        shown = "; ".join(changes[:10]) + (f"; and {len(changes) - 10} more" if len(changes) > 10 else "")
        raise PublishError(
            f"{date}: the partition changed during the run, nothing was published ({shown}): re-run the date"
        )


def _check_failure_budget(result: DayPublished, budget: float) -> None:
    if result.files and result.files_failed / result.files > budget:
        raise FailureBudgetExceeded(
            f"{result.date} was published, but {result.files_failed} of {result.files} files failed "
            f"({result.files_failed / result.files:.0%}, over the failure budget of {budget:.0%}): see the "
            "`error` column of the recordings table (status = 'failed') for each file's reason",
            result,
        )


def _drop_stale_staging(settings: Settings, grace: dt.timedelta) -> None:
    """Staging folders of runs that neither published nor released (a killed `svp run`, a DAG run that was never
    retried), untouched for longer than the grace period, on local and s3:// lakes alike (they hold transcripts).
    Cleanup never fails a publish that has succeeded."""
    root = settings.lake_root / STAGING
    cutoff_ns = (time.time() - grace.total_seconds()) * 1e9
    try:
        newest: dict[str, int] = {}
        for rel, _, mtime in root.list_files():
            parts = rel.split("/")
            if len(parts) >= 3 and parts[0].startswith("date=") and parts[1].startswith("run="):
                run = f"{parts[0]}/{parts[1]}"
                newest[run] = max(newest.get(run, 0), mtime)
        for run, mtime in sorted(newest.items()):
            if mtime < cutoff_ns:
                log.info("removing abandoned staging %s", root / run)
                stage = root / run
                stage.remove_tree()
                _remove_empty_parents(stage.parent, root)
    except (OSError, storage.StorageError) as exc:  # logged; the next publish tries again
        log.warning("removing abandoned staging skipped: %s", exc)


# A day's staged rows live in the system allocator's memory: with pyarrow's default (mimalloc), reading 2,000,000
# utterances from 782 batch files held 1.3 GB for 0.65 GB of data, with the system's 0.87 GB (benchmarks/write_path.py).
_DAY_MEMORY = pa.system_memory_pool()


def _read_staged(stage: Path, table: str, schema: pa.Schema) -> pa.Table:
    batches = sorted(stage.glob(f"batch-*.{table}.parquet"))
    if not batches:
        return schema.empty_table()
    return storage.read_parquet_files(batches, schema, memory_pool=_DAY_MEMORY)


def _sorted(rows: pa.Table, table: str) -> pa.Table:
    """``rows`` in the table's order (tables.SORT_KEYS). Staged batches arrive in it already (plan sorts the files,
    each batch keeps their order, each file its channels' segments), so usually nothing is copied: a sorted copy of a
    day of 2,000,000 utterances costs 0.7 GB."""
    order = pc.sort_indices(
        rows, [(key, "ascending") for key in tables.SORT_KEYS[table]], memory_pool=_DAY_MEMORY
    )
    if pc.all(pc.equal(order, pa.array(range(len(order)), type=order.type))).as_py() in (True, None):
        return rows
    return pc.take(rows, order, memory_pool=_DAY_MEMORY)


def airflow_run_start(start_date: dt.datetime | None, run_after: dt.datetime | None) -> dt.datetime | None:
    """When an Airflow run of the daily DAG started, from its DagRun: the ``started_at`` of its ``runs`` row and the
    ``processed_at`` of its rows. That is the DagRun's ``start_date``, except under ``airflow dags test`` (``svp
    demo``, the end-to-end tests), which sets ``start_date`` to the logical date, a midnight a day or more before
    the run (the page showed the demo's one-minute run as "took 1760.3 min"); its ``run_after`` is when the run was
    asked for. No run starts before its ``run_after``, so the later of the two is the run's own start either way: a
    scheduled run's ``start_date``, a test run's ``run_after``."""
    known = [t for t in (start_date, run_after) if t is not None]
    return max(known) if known else None


def _run_summary(run_id: str, recordings: pa.Table, utterances: pa.Table, started_at) -> dict:
    # Arrow compute, not Python lists: a day of 2,000,000 utterances as Python objects costs hundreds of MB.
    status = recordings.column("status")
    versions = sorted(v for v in pc.unique(utterances.column("model_version")).to_pylist() if v)
    speech = pc.sum(pc.subtract(utterances.column("end_s"), utterances.column("start_s"))).as_py() or 0.0
    return {
        "run_id": run_id,
        "started_at": started_at or _now(),
        "finished_at": _now(),
        "files": recordings.num_rows,
        "files_ok": pc.sum(pc.equal(status, "ok")).as_py() or 0,
        "files_failed": pc.sum(pc.equal(status, "failed")).as_py() or 0,
        "utterances": utterances.num_rows,
        "speech_seconds": round(float(speech), 3),
        "model_versions": ",".join(versions),
    }


# -- one process, no Airflow -----------------------------------------------------------------------------------------


def run_date(
    settings: Settings, date: str, run_id: str | None = None, show_progress: bool = True
) -> DayPublished:
    """`svp run`: plan, every batch, publish — the DAG's tasks in one process. The process is the run: its lease is
    bound to it (a re-run on this host takes over at once if it dies) and kept alive while it works."""
    started_at = _now()
    run_id = run_id or new_run_id(started_at)
    t0 = time.perf_counter()
    lease, batches = plan_with_lease(
        settings, date, run_id, bound_to_process=True
    )  # (gives it back if stopped)
    try:  # nothing between the plan and this guard: a Ctrl-C there would keep the date
        with leases(settings).keep_alive(lease):  # (publish renews it itself, then gives it back)
            with (
                tqdm(
                    total=sum(len(b.items) for b in batches),
                    unit="file",
                    desc=f"transcribing {date}",
                    disable=not show_progress,
                ) as bar,
                # log lines printed above the bar, not through it
                logging_redirect_tqdm() if show_progress else contextlib.nullcontext(),
            ):
                for batch in _process_batches(settings, batches, started_at):
                    bar.update(len(batch.items))
        result = publish(settings, date, run_id, started_at)
    except BaseException:
        # Nobody resumes a failed `svp run` (the next one has a new run id): give up the date and the staged
        # batches. A failure before the commit leaves the published tables as they were.
        release(settings, date, run_id)
        raise
    return dataclasses.replace(result, seconds=round(time.perf_counter() - t0, 2))


def published_run(settings: Settings, date: str) -> str | None:
    """The run id whose rows the lake holds for ``date`` (None: never published)."""
    runs = lake(settings).read("runs", check_date(date)).column("run_id").to_pylist()
    return runs[0] if runs else None


# `svp run` transcribes this many batches at a time, as the DAG's mapped tasks do. One at a time, the server idled
# at the end of every batch while its last long files finished: 36 clips in batches of 16 took 9.8-10.8 s, in one
# batch 8.6-9.1 s, in batches of 16 two at a time 8.7-9.3 s (benchmarks/README.md, issue 18).
BATCHES_IN_FLIGHT = 2


def _process_batches(settings: Settings, batches: list[Batch], started_at: dt.datetime):
    """``process_batch`` over ``batches``, ``BATCHES_IN_FLIGHT`` at a time; yields each batch as it completes. The
    first failure (or an interrupt: Ctrl-C, SIGTERM) cancels the batches not yet started, stops the running ones
    from starting another file, and is raised once they have ended, so nothing is still writing to the staging area
    when the caller releases it."""
    cancelled = threading.Event()
    with ThreadPoolExecutor(BATCHES_IN_FLIGHT, thread_name_prefix="svp-batch") as pool:
        futures = {
            pool.submit(process_batch, settings, batch, started_at, cancelled): batch for batch in batches
        }
        try:
            for future in as_completed(futures):
                future.result()
                yield futures[future]
        finally:
            cancelled.set()
            for future in futures:
                future.cancel()  # a no-op for the finished and the running; leaving the pool waits for the running


class RunCancelled(SvpError):
    """A batch stopped early because its run is stopping (never seen outside `_process_batches`)."""


def new_run_id(started_at: dt.datetime) -> str:
    """Unique even for two runs started in the same second (they must not share a staging folder)."""
    return f"svp-run-{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _drop_staging(settings: Settings, date: str, run_id: str) -> None:
    """Remove the run's staged batches, and the date's staging folder when no other run is using it."""
    stage = staging_dir(settings, date, run_id)
    stage.remove_tree()
    _remove_empty_parents(stage.parent, settings.lake_root / STAGING)


def _remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents up to (not including) ``stop`` while they are empty. Another run may be
    creating its staging dir beside them at the same moment: a directory that is no longer empty, or already gone,
    ends the walk instead of failing a publish that has already succeeded."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:  # not empty (another run's staging), or removed by another run
            return
        path = path.parent


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
