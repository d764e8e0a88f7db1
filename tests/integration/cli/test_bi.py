"""The lake from outside the project (issue 30): `svp bi`'s SQL, run in a DuckDB process that has nothing but the
extensions `svp bi` installed and no way to download one, answers every canned query as the warehouse does; the
warehouse file opened without that SQL says what to run; `svp sql` opens the DuckDB shell on the lake; the demo's
closing hints work when pasted into a shell."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sensevoice_pipeline.demo.run import next_steps, svp_command
from sensevoice_pipeline.warehouse.database import Warehouse
from sensevoice_pipeline.warehouse.queries import QUERIES
from tests.support.page import DATES, build_lake
from tests.support.svp import svp

pytestmark = pytest.mark.subprocess

# A DuckDB that finds extensions only in its own directory and cannot download any: every INSTALL that is not a
# no-op fails ("Failed to download extension"), as in plain DuckDB 1.5.5 without internet.
OFFLINE_DUCKDB = """
import duckdb, json, sys
extensions, init, queries, warehouse = sys.argv[1:5]
config = {
    "extension_directory": extensions,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "custom_extension_repository": "http://127.0.0.1:9/no-such-repository",
}
answers = {}
con = duckdb.connect(config=config)
con.execute(open(init).read())
for name, (sql, params) in json.loads(open(queries).read()).items():
    answers[name] = [list(map(str, row)) for row in con.execute(sql, params).fetchall()]
con.close()
con = duckdb.connect(warehouse, read_only=True, config=config)
try:
    con.execute("SELECT count(*) FROM utterances").fetchall()
    answers["unattached"] = "answered"
except duckdb.Error as exc:
    answers["unattached"] = str(exc)
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bi") / "lake"
    build_lake(root)
    return root


def test_the_printed_sql_answers_every_canned_query_in_a_duckdb_that_cannot_download(lake, tmp_path):
    extensions, init = tmp_path / "extensions", tmp_path / "init.sql"
    out = svp("bi", "--lake", str(lake), "--extension-directory", str(extensions), "--init", str(init))
    assert out.returncode == 0, out.stderr
    assert "ducklake" in out.stderr and init.read_text().rstrip().endswith("USE lake;")
    params = {"from_date": DATES[0], "to_date": DATES[-1]}
    queries = {name: (query.render(), params) for name, query in QUERIES.items()}
    (tmp_path / "queries.json").write_text(json.dumps(queries))
    warehouse = Warehouse(lake)
    check = subprocess.run(
        [sys.executable, "-c", OFFLINE_DUCKDB, str(extensions), str(init), str(tmp_path / "queries.json")]
        + [str(warehouse.db_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    answers = json.loads(check.stdout)
    for name in QUERIES:
        expected = [
            list(map(str, row.values())) for row in warehouse.query(name, DATES[0], DATES[-1]).to_pylist()
        ]
        assert answers[name] == expected and expected, name
    # The warehouse file alone (a BI tool that opened it without the SQL): its views say what to run.
    assert f"run the SQL that `svp bi --lake {lake}` prints first" in answers["unattached"]


@pytest.mark.skipif(
    shutil.which("duckdb", path=str(Path(sys.executable).parent)) is None, reason="duckdb-cli"
)
def test_svp_sql_opens_the_duckdb_shell_on_the_lake(lake):
    shell = subprocess.run(
        [sys.executable, "-m", "sensevoice_pipeline.ui.cli", "sql", "--lake", str(lake)],
        input="SELECT count(*) AS utterances FROM utterances;\n.quit\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr[-2000:]
    assert "17" in shell.stdout, shell.stdout


def test_every_hint_the_demo_prints_runs_when_pasted(lake, tmp_path):
    lines = [line.split("#")[0].strip() for line in next_steps(svp_command(), lake).splitlines()]
    commands = [line for line in lines if line and not line.endswith(":")]
    assert len(commands) == 5
    for command in commands:
        out = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, (command, out.stderr[-2000:])
    assert {p.name for p in tmp_path.iterdir()} == {"angry-calls.csv", "angry-share.png"}


def test_a_sqlalchemy_engine_reads_the_lake_as_docs_bi_says(lake, tmp_path):
    """docs/bi.md's Superset recipe: duckdb_engine on :memory:, the setup SQL run on every new connection."""
    from sqlalchemy import create_engine, event, text

    init, extensions = tmp_path / "lake.sql", tmp_path / "extensions"
    out = svp("bi", "--lake", str(lake), "--init", str(init), "--extension-directory", str(extensions))
    assert out.returncode == 0, out.stderr
    setup = init.read_text()
    engine = create_engine(
        "duckdb:///:memory:", connect_args={"config": {"extension_directory": str(extensions)}}
    )

    @event.listens_for(engine, "connect")
    def attach_lake(dbapi_connection, _record):
        dbapi_connection.execute(setup)

    with engine.connect() as con:
        assert con.execute(text("SELECT count(*) FROM utterances")).scalar() == 17
        assert con.execute(text("SELECT count(DISTINCT date) FROM emotion_daily")).scalar() == len(DATES)
    engine.dispose()
