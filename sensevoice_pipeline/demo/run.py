"""`svp demo` (`make demo`): the main job end to end on one machine.

1. export the model (the bundled trained fixture model unless ``--model`` names a checkpoint dir or hub id) into
   ``<workdir>/model_repository`` — skipped when the latest version already comes from the same checkpoint files;
2. write a sample day of calls under ``<workdir>/raw/date=<day>/`` (several languages and formats, a manifest with
   hints, a stereo 8 kHz call, a long call, a corrupt upload);
3. start a local CPU Triton on the repository;
4. run the ``sensevoice_daily`` DAG for that day with ``airflow dags test`` (a throwaway Airflow home under the
   workdir, the Triton address in the ``sensevoice_triton`` Connection);
5. print the day's outcome and the emotion trend from the DuckDB warehouse.
"""

from __future__ import annotations

import datetime as dt
import logging
import shlex
import shutil
import sys
from pathlib import Path

from sensevoice_pipeline.demo.local_airflow import AirflowRunError, LocalAirflow, triton_connection_env
from sensevoice_pipeline.demo.sample_day import write_sample_day
from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.resources import FIXTURE_MODEL_DIR
from sensevoice_pipeline.serving.repository import ModelRepository, RepositoryError
from sensevoice_pipeline.serving.server import LocalTriton, ServerError
from sensevoice_pipeline.settings import Settings
from sensevoice_pipeline.warehouse.database import Warehouse
from sensevoice_pipeline.warehouse.report import print_table, write_chart

log = logging.getLogger(__name__)
DAG_ID = "sensevoice_daily"


class DemoError(SvpError, RuntimeError):
    pass


def run_demo(model: str | None, workdir: Path, date: str | None = None) -> int:

    workdir = Path(workdir).resolve()
    day = date or (dt.date.today() - dt.timedelta(days=1)).isoformat()
    settings = Settings(raw_root=workdir / "raw", lake_root=workdir / "lake")
    repository = workdir / "model_repository"

    _step(1, f"model: {model or 'bundled fixture model'} -> {repository}")
    version = ensure_exported(model or str(FIXTURE_MODEL_DIR), repository)
    print(f"   serving version {version}")

    _step(2, f"sample day {day} -> {settings.raw_root}")
    shutil.rmtree(settings.raw_root / f"date={day}", ignore_errors=True)
    calls = write_sample_day(settings.raw_root, day)
    print(f"   {len(calls)} files and manifest.csv")

    _step(3, "local CPU Triton")
    try:
        with LocalTriton(repository, log_file=workdir / "tritonserver.log") as triton:
            print(f"   ready: gRPC {triton.grpc_url} (log {triton.log_file})")
            _step(4, f"airflow dags test {DAG_ID} {day}")
            # the run's Params point at the demo's own folders: allowed for this run (settings.check_run_params)
            allowed = {
                "SVP_ALLOWED_ROOTS": ",".join(
                    str(p.absolute()) for p in (settings.raw_root, settings.lake_root)
                )
            }
            airflow = LocalAirflow(
                home=workdir / "airflow", extra_env={**triton_connection_env(triton.grpc_url), **allowed}
            )
            conf = {"date": day, "raw_root": str(settings.raw_root), "lake_root": str(settings.lake_root)}
            airflow.dags_test(DAG_ID, f"{day}T00:00:00+00:00", conf=conf)
            print(f"   DAG run succeeded (Airflow home {airflow.home})")
    except ServerError as exc:
        raise DemoError(f"the local Triton did not start: {exc}") from exc
    except AirflowRunError as exc:
        raise DemoError(str(exc)) from exc

    _step(5, f"report from {settings.warehouse_path}")
    warehouse = Warehouse(settings.lake_root, settings.warehouse_path, settings.catalog)
    _print_day(warehouse, day)
    print(f"\n# Emotion trend by language, {day}")
    trend = warehouse.query("emotion-trend", day, day, "language")
    print_table(trend)
    write_chart("emotion-trend", trend, workdir / "emotion_trend.png", date_from=day, date_to=day)
    print(f"\nChart: {workdir / 'emotion_trend.png'}")
    print(next_steps(svp_command(), settings.lake_root))
    return 0


def svp_command() -> str:
    """How to run `svp` from here: its name when the shell finds this very `svp` on PATH, else its full path (the
    hints below must work when pasted, also from a virtualenv that is not activated)."""
    installed = Path(sys.executable).parent / "svp"
    on_path = shutil.which("svp")
    if on_path and Path(on_path).resolve() == installed.resolve():
        return "svp"
    return str(installed) if installed.is_file() else f"{sys.executable} -m sensevoice_pipeline.ui.cli"


def next_steps(svp: str, lake_root) -> str:
    """Commands to try next, one per line, each complete."""
    lake = shlex.quote(str(lake_root))
    return "\n".join(
        [
            "\nNext (paste any line):",
            f"  {svp} query events --lake {lake}",
            f"  {svp} query angry-calls --lake {lake} --csv angry-calls.csv",
            f"  {svp} query angry-share --lake {lake} --png angry-share.png",
            f"  {svp} sql --lake {lake} --query 'SELECT language, count(*) FROM utterances GROUP BY ALL'",
            f"  {svp} bi --lake {lake}        # the SQL that opens this lake in any DuckDB / BI tool",
        ]
    )


def ensure_exported(model: str, repository: Path) -> int:
    """The repository's latest version when it was exported from these very checkpoint files, else a new export."""
    from sensevoice_export.checkpoint import CheckpointError, find_checkpoint_files, resolve_model
    from sensevoice_export.pipeline import ExportError, run_export

    try:
        files = find_checkpoint_files(resolve_model(model))
        repo = ModelRepository(repository)
        latest = repo.latest_complete_version() if repo.is_initialised() else None
        if latest is not None and repo.read_meta(latest).get("source", {}).get("sha256") == files.checksums():
            return latest
        return run_export(model, repository, "fp32", "legacy").version
    except (CheckpointError, ExportError, RepositoryError) as exc:
        raise DemoError(f"export failed: {exc}") from exc


def _print_day(warehouse, day: str) -> None:
    con = warehouse.connect()
    try:
        runs = con.execute(
            "SELECT files, files_ok, files_failed, utterances, speech_seconds, model_versions "
            "FROM runs WHERE date = ?",
            [day],
        ).fetchall()
        failed = con.execute(
            "SELECT source_path, error FROM recordings WHERE date = ? AND status = 'failed' "
            "ORDER BY source_path",
            [day],
        ).fetchall()
    finally:
        con.close()
    for files, ok, n_failed, utterances, seconds, versions in runs:
        print(
            f"   {files} files: {ok} ok, {n_failed} failed; {utterances} utterances, {seconds:.1f} s of speech, "
            f"model version {versions}"
        )
    for path, error in failed:
        print(f"   failed: {path}: {error}")


def _step(n: int, text: str) -> None:
    print(f"[{n}/5] {text}", flush=True)
