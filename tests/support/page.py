"""The small real lake (Parquet + DuckDB through the catalog) and model repository the plugin page's tests read, and
the checks they share. The fixtures ``lake`` and ``model_repo`` (tests/integration/conftest.py) build them once per
module."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np

from sensevoice_pipeline.lake import tables
from sensevoice_pipeline.lake.catalog import Lake
from sensevoice_pipeline.ui import page_text
from sensevoice_pipeline.ui.page_data import Params, load_dashboard
from sensevoice_pipeline.warehouse.database import Warehouse

DATES = ("2026-03-01", "2026-03-02", "2026-03-03")
EVIL_ERROR = "decode failed: <script>alert('x')</script> & more"
EVIL_PATH = "calls/<b>bad</b>&co.mp3"
CORRUPT_WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(7).bytes(
    2000
)  # the sample day's broken upload, which the clip form must refuse with the decoder's reason


def utterance_row(date, rec, channel, index, language, emotion, run_id, version="1"):
    start = float(index * 3)
    return {
        "recording_id": rec,
        "source_path": f"calls/{rec}.wav",
        "channel": channel,
        "segment_index": index,
        "start_s": start,
        "end_s": start + 2.5,
        "language": language,
        "language_hint": "auto",
        "emotion": emotion,
        "event": "speech",
        "itn": True,
        "text": f"segment {index}",
        "raw_text": f"<|{language}|><|{emotion.upper()}|><|Speech|><|withitn|>segment {index}",
        "model_name": "sensevoice",
        "model_version": version,
        "run_id": run_id,
        "processed_at": dt.datetime.fromisoformat(f"{date}T01:00:00+00:00"),
    }


def recording_row(date, rec, run_id, status="ok", error=None, path=None, n=0):
    return {
        "recording_id": rec,
        "source_path": path or f"calls/{rec}.wav",
        "size_bytes": 48000,
        "sha256": "0" * 64,
        "format": "WAV" if status == "ok" else None,
        "sample_rate": 16000,
        "channels": 2,
        "duration_s": 12.0,
        "status": status,
        "error": error,
        "n_segments": n,
        "language_hint": "auto",
        "channel_mode": "split",
        "model_version": "1" if status == "ok" else None,
        "run_id": run_id,
        "processed_at": dt.datetime.fromisoformat(f"{date}T01:00:00+00:00"),
        "metadata": [],
    }


def build_lake(lake: Path) -> dict:
    """Three days of two calls each (en and zh, two channels), one failed file a day from the second day on;
    the third day was transcribed by model version 7, which the test repository does not hold."""
    plan = {  # per date: (language, channel) -> emotions of its segments
        DATES[0]: {
            ("en", 0): ["neutral", "neutral", "happy"],
            ("en", 1): ["angry", "neutral"],
            ("zh", 0): ["neutral", "sad"],
        },
        DATES[1]: {("en", 0): ["neutral", "angry", "angry"], ("zh", 1): ["happy", "happy", "neutral", "sad"]},
        DATES[2]: {("en", 1): ["neutral"], ("zh", 0): ["neutral", "surprised"]},
    }
    for d, (date, groups) in enumerate(plan.items()):
        run_id = f"scheduled__{date}T00:00:00+00:00"
        version = "7" if date == DATES[2] else "1"
        utterances, recordings = [], []
        for language in ("en", "zh"):
            rec = f"{date}-{language}"
            segs = [(ch, e) for (lang, ch), emos in groups.items() if lang == language for e in emos]
            utterances += [
                utterance_row(date, rec, ch, i, language, e, run_id, version)
                for i, (ch, e) in enumerate(segs)
            ]
            recordings.append(recording_row(date, rec, run_id, n=len(segs)))
        if d >= 1:
            recordings.append(recording_row(date, f"{date}-bad", run_id, "failed", EVIL_ERROR, EVIL_PATH))
        utt = tables.to_table(utterances, tables.UTTERANCES)
        started = dt.datetime.fromisoformat(f"{date}T01:00:00+00:00") + dt.timedelta(days=1)
        run = {
            "run_id": run_id,
            "started_at": started,
            "finished_at": started + dt.timedelta(seconds=42),
            "files": len(recordings),
            "files_ok": 2,
            "files_failed": len(recordings) - 2,
            "utterances": len(utterances),
            "speech_seconds": 2.5 * len(utterances),
            "model_versions": version,
        }
        Lake(lake).commit_day(
            date,
            {
                "utterances": utt,
                "recordings": tables.to_table(recordings, tables.RECORDINGS),
                **tables.rollups(utt),
                "runs": tables.to_table([run], tables.RUNS),
            },
        )
    Warehouse(lake).refresh()
    return plan


def build_model_repository(root: Path) -> Path:
    """Version 1 complete (with an export_meta.json like `svp export` writes), version 2 missing its encoder."""
    for model, files in (
        ("sensevoice", ("model.py", "frontend.json", "am.mvn")),
        ("sensevoice_encoder", ("model.onnx", "model.py")),
    ):
        (root / model).mkdir(parents=True)
        (root / model / "config.pbtxt").write_text("")
        (root / model / "1").mkdir()
        for f in files:
            (root / model / "1" / f).write_text("")
    meta = {
        "version": 1,
        "precision": "int8",
        "target_device": "cpu",
        "exporter": "legacy",
        "opset": 17,
        "architecture": {"parameters": 234_000_000},
        "source": {"model": "iic/SenseVoiceSmall"},
        "exported_at": "2026-02-27T10:00:00+00:00",
        "parity": {"max_abs": 0.01, "min_cosine": 0.991, "argmax_agreement": 0.985, "passed": True},
    }
    (root / "sensevoice" / "1" / "export_meta.json").write_text(json.dumps(meta))
    (root / "sensevoice" / "2").mkdir()
    (root / "sensevoice" / "2" / "export_meta.json").write_text(
        json.dumps({"version": 2, "precision": "fp16"})
    )
    return root


def load(lake, model_repo, **params):
    return load_dashboard(Warehouse(lake), model_repo, Params.parse(**params))


def assert_no_server_paths(page: str, *paths: Path) -> None:
    for path in paths:
        for form in {str(path), str(path.resolve())}:
            assert form not in page, form
    assert not re.search(r"(?<![\w.:/~-])/(tmp|home|root|var|srv|data|opt|mnt|work)/", page), re.search(
        r".{60}(?<![\w.:/~-])/(tmp|home|root|var|srv|data|opt|mnt|work)/.{60}", page
    )


def esc(text: str) -> str:
    return page_text.esc(text)
