"""`svp` as a user runs it, as a subprocess: help, `svp serve` in the foreground, and user errors that are one line
on stderr with the exit code of their kind (64 for a usage error) and never a traceback. What the command line does in-process: tests/unit/ui/test_cli.py."""

import os
import subprocess
import sys
import threading
import wave
from functools import partial
from pathlib import Path

import pytest

from tests.support.svp import svp as run_svp_module

pytestmark = pytest.mark.subprocess

svp = partial(run_svp_module, timeout=120)


def test_top_level_help_lists_commands():
    out = svp("--help")
    assert out.returncode == 0
    for command in ("export", "serve", "transcribe"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "command,expected",
    [
        ("export", "--precision"),
        ("serve", "--grpc-port"),
        ("transcribe", "SVP_TRITON_URL"),
    ],
)
def test_command_help(command, expected):
    out = svp(command, "--help")
    assert out.returncode == 0 and expected in out.stdout


def test_transcribe_segments_like_the_daily_job_so_it_reads_the_segment_settings(tmp_path):
    clip = tmp_path / "c.wav"
    with wave.open(str(clip), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 16000)
    env = {**os.environ, "SVP_MERGE_SEGMENT_S": "45"}
    out = subprocess.run(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", "transcribe", str(clip)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 64 and "SVP_MERGE_SEGMENT_S" in out.stderr, out.stderr


def test_serve_refuses_an_empty_repository(tmp_path):
    out = svp("serve", "--repository", str(tmp_path))
    assert out.returncode == 64 and "not ready" in out.stderr and "svp export" in out.stderr


@pytest.mark.triton
def test_serve_runs_in_the_foreground_until_sigterm(exported_repository):
    import signal
    import socket

    from sensevoice_pipeline.serving.server import free_port

    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensevoice_pipeline.ui.cli",
            "serve",
            "--repository",
            str(exported_repository),
            "--http-port",
            str(ports[0]),
            "--grpc-port",
            str(ports[1]),
            "--metrics-port",
            str(ports[2]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = ""
        while "Triton ready" not in line:
            line = proc.stdout.readline()
            assert line, "svp serve exited before it was ready"
        assert f"gRPC 127.0.0.1:{ports[1]}" in line and f"http://127.0.0.1:{ports[0]}" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    for port in ports:  # the server and its python stubs are gone
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


# -- user errors: one line on stderr, exit code 64, never a traceback ------------------------------------------------

SVP_EXECUTABLE = Path(sys.executable).with_name("svp")  # the installed console script, as a user runs it


def run_svp(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `svp` executable in ``cwd`` (its default var/ paths land there), without the caller's SVP_* and AWS_*
    settings, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SVP_", "AWS_"))}
    return subprocess.run(
        [str(SVP_EXECUTABLE), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=120,
    )


def assert_one_line_error(out: subprocess.CompletedProcess, *fragments: str, code: int = 64) -> str:
    """Exit code ``code`` (default 64: fix the command) and exactly one non-empty line on stderr, naming the command
    and each of ``fragments``."""
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert lines[0].startswith("svp "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_raw_day(raw: Path, date: str) -> Path:
    """A partition with one short silent wav: enough for `svp run` to find work."""
    part = raw / f"date={date}"
    part.mkdir(parents=True)
    with wave.open(str(part / "call.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 8000)
    return raw


def test_the_svp_executable_is_installed():
    assert SVP_EXECUTABLE.exists(), f"{SVP_EXECUTABLE}: run `make venv` (pip install -e .)"


def test_a_lake_path_with_a_question_mark_is_refused_up_front(tmp_path):
    assert_one_line_error(run_svp("query", "emotion-trend", "--lake", "lake?", cwd=tmp_path), "lake?", "'?'")
    assert_one_line_error(run_svp("query", "emotion-trend", "--warehouse", "w?.duckdb", cwd=tmp_path), "'?'")


@pytest.mark.parametrize("lake", ["var/la[ke", "lake]", "lakes/*"])
def test_a_lake_path_with_glob_characters_works(tmp_path, lake):
    """The lake's files are found through its catalog, not through glob patterns: any directory name works."""
    from sensevoice_pipeline.lake import tables
    from sensevoice_pipeline.lake.catalog import Lake
    from sensevoice_pipeline.warehouse.database import Warehouse

    assert_one_line_error(
        run_svp("query", "emotion-trend", "--lake", lake, cwd=tmp_path), "publish a day first"
    )
    root = tmp_path / lake
    Lake(root).commit_day(
        "2026-01-01",
        {
            "emotion_confidence_daily": tables.to_table(
                [
                    {
                        "language": "en",
                        "emotion": "angry",
                        "channel": 0,
                        "emotion_confidence_bucket": 0.8,
                        "utterances": 3,
                        "speech_seconds": 4.0,
                    }
                ],
                tables.EMOTION_CONFIDENCE_DAILY,
            )
        },
    )
    Warehouse(root).refresh()
    out = run_svp("query", "emotion-trend", "--lake", lake, cwd=tmp_path)
    assert out.returncode == 0 and "angry" in out.stdout, out.stderr


@pytest.mark.parametrize(
    "args,env,fragments",
    [
        (["--lake", "ftp://x"], {}, ["ftp://x"]),
        ([], {"SVP_LAKE_ROOT": "ftp://x"}, ["SVP_LAKE_ROOT", "ftp://x"]),
        (["--warehouse", "s3://x"], {}, ["s3://x"]),
        ([], {"SVP_WAREHOUSE": "s3://x/w.duckdb"}, ["SVP_WAREHOUSE", "s3://x/w.duckdb"]),
    ],
)
def test_query_refuses_storage_it_cannot_use(tmp_path, args, env, fragments):
    assert_one_line_error(run_svp("query", "events", *args, cwd=tmp_path, env=env), *fragments)


def test_run_refuses_a_storage_uri_it_cannot_use(tmp_path):
    out = run_svp("run", "--date", "2026-01-01", "--lake", "ftp://x", cwd=tmp_path)
    assert_one_line_error(out, "ftp://x")


@pytest.mark.parametrize("lake", ["missing", "empty"])
def test_query_on_a_lake_without_data_is_one_line(tmp_path, lake):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_svp("query", "emotion-trend", "--lake", lake, cwd=tmp_path))


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--from", "2026-02-01", "--to", "2026-01-31"], ["--from 2026-02-01 is after --to 2026-01-31"]),
        (["--from", "yesterday"], ["--from", "not a date", "yesterday"]),
        (["--to", "2026-13-01"], ["--to", "not a date"]),
    ],
)
def test_query_refuses_dates_that_cannot_match(tmp_path, args, fragments):
    assert_one_line_error(
        run_svp("query", "emotion-trend", *args, "--lake", "lake", cwd=tmp_path), *fragments
    )


def test_query_refuses_an_output_it_cannot_write_before_querying(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "reports").mkdir()
    # No lake at all: these errors come before the warehouse is opened, and nothing is created.
    out = run_svp("query", "events", "--csv", "notes.txt/out.csv", cwd=tmp_path)
    assert_one_line_error(out, "--csv", "notes.txt is a file")
    assert_one_line_error(
        run_svp("query", "events", "--png", "reports", cwd=tmp_path), "--png", "is a folder"
    )
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "reports"]


@pytest.mark.parametrize(
    "args,env,fragments",
    [
        (["--language", "xx"], {}, ["unknown default language 'xx'"]),
        ([], {"SVP_LANGUAGE": "xx"}, ["SVP_LANGUAGE", "'xx'"]),
        ([], {"SVP_CHANNEL_MODE": "stereo"}, ["SVP_CHANNEL_MODE", "'stereo'"]),
    ],
)
def test_run_refuses_a_default_it_cannot_use_before_any_file(tmp_path, args, env, fragments):
    """Not every file failed with "unknown language in manifest.csv" and the day published: nothing runs."""
    raw = write_raw_day(tmp_path / "raw", "2026-01-01")
    out = run_svp(
        "run",
        "--date",
        "2026-01-01",
        "--raw",
        str(raw),
        "--lake",
        str(tmp_path / "lake"),
        "--url",
        unreachable(),
        *args,
        cwd=tmp_path,
        env=env,
    )
    assert_one_line_error(out, *fragments)
    assert not (tmp_path / "lake").exists()


def test_a_flag_stands_in_for_a_bad_environment_variable(tmp_path):
    """SVP_LANGUAGE=xx with --language en is not refused for the variable: the run goes on to the next check."""
    out = run_svp(
        "run",
        "--date",
        "2026-01-01",
        "--raw",
        str(tmp_path / "raw"),
        "--lake",
        str(tmp_path / "lake"),
        "--language",
        "en",
        cwd=tmp_path,
        env={"SVP_LANGUAGE": "xx"},
    )
    line = assert_one_line_error(out, "no partition for 2026-01-01", code=75)  # late data: try again later
    assert "SVP_LANGUAGE" not in line


def unreachable() -> str:
    from sensevoice_pipeline.serving.server import free_port

    return f"127.0.0.1:{free_port()}"


def test_svp_run_waits_for_a_late_partition_and_says_when_it_never_came(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    out = run_svp(
        "run",
        "--date",
        "2026-01-01",
        "--raw",
        str(raw),
        "--wait",
        "0.05",
        "--ready-marker",
        "_SUCCESS",
        "--url",
        unreachable(),
        cwd=tmp_path,
    )
    assert out.returncode == 75 and "Traceback" not in out.stderr, out.stderr  # not arrived: try again later
    last = out.stderr.strip().splitlines()[-1]  # after one progress line per check
    assert last.startswith("svp run: ") and "was not ready after" in last and "_SUCCESS" in last, last
    # The partition lands (marker last) while the run waits: it goes on, and then finds no Triton.
    late = threading.Timer(
        2.0, lambda: (write_raw_day(raw, "2026-01-02"), (raw / "date=2026-01-02" / "_SUCCESS").touch())
    )
    late.start()
    try:
        out = run_svp(
            "run",
            "--date",
            "2026-01-02",
            "--raw",
            str(raw),
            "--wait",
            "1",
            "--ready-marker",
            "_SUCCESS",
            "--url",
            unreachable(),
            cwd=tmp_path,
        )
    finally:
        late.cancel()
    assert out.returncode == 69 and "cannot reach Triton" in out.stderr.strip().splitlines()[-1], out.stderr
    assert "_SUCCESS" in out.stderr  # it said what it found before going on


# -- issue 30: the first five minutes ----------------------------------------------------------------------------------


def test_ctrl_c_while_waiting_for_the_partition_says_what_was_published(tmp_path):
    """Interrupted before any lease or lake (waiting for a day that has not arrived): one line, exit 130."""
    import signal
    import time

    (tmp_path / "raw").mkdir()
    run = subprocess.Popen(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", "run", "--date", "2026-01-03"]
        + ["--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake"), "--wait", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    # Interrupt once it waits (its first check's log line), not while it is still importing (under load that takes
    # seconds, and Ctrl-C there is Python's own traceback).
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("next check in" in line for line in seen):
        line = run.stderr.readline()
        if not line:  # it ended on its own: the assertions below say how
            break
        seen.append(line)
    run.send_signal(signal.SIGINT)
    _, rest = run.communicate(timeout=60)
    err = "".join(seen) + rest
    assert run.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "svp run: stopped by SIGINT: nothing of 2026-01-03 was published by this run; its lease was given back"
    ), err[-2000:]
    assert "Traceback" not in err


def test_serve_on_a_busy_port_names_the_port_first(tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = run_svp("serve", "--repository", str(tmp_path), "--grpc-port", str(port), cwd=tmp_path)
    assert_one_line_error(out, f"port {port} (--grpc-port) is already in use on 127.0.0.1")
    assert not (tmp_path / "var").exists()  # refused before writing a key


@pytest.mark.parametrize(
    "url,fragment",
    [
        ("http://triton:8000", "has a scheme: give the gRPC host:port alone, e.g. triton:8001"),
        ("a:8001,,b:8001", "has an empty entry"),
    ],
)
def test_a_url_that_is_not_host_port_is_one_line(tmp_path, url, fragment):
    clip = tmp_path / "clip.wav"
    with wave.open(str(clip), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 8000)
    assert_one_line_error(run_svp("transcribe", str(clip), "--url", url, cwd=tmp_path), fragment)
