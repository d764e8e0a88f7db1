"""`svp demo` (what `make demo` runs) end to end in a fresh work dir, and again to show it reuses its export."""

import subprocess
import sys


def svp_demo(workdir):
    return subprocess.run([sys.executable, "-m", "sensevoice_pipeline.ui.cli", "demo", "--workdir", str(workdir),
                           "--date", "2026-11-20"], capture_output=True, text=True, timeout=600)


def test_demo_runs_end_to_end_and_reuses_its_export(tmp_path):
    out = svp_demo(tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[4/5] airflow dags test sensevoice_daily 2026-11-20" in out.stdout
    assert "24 files: 23 ok, 1 failed" in out.stdout
    assert "failed: date=2026-11-20/billing/corrupt_upload.wav: cannot decode" in out.stdout
    trend = out.stdout.split("# Emotion trend by language, 2026-11-20", 1)[1]
    assert any(line.split()[1:3] == ["yue", "surprised"] for line in trend.splitlines() if line.strip())
    assert (tmp_path / "emotion_trend.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "lake" / "warehouse.duckdb").is_file()

    again = svp_demo(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "serving version 1" in again.stdout and "[1/4] load" not in again.stdout  # no second export
