"""The canary's golden set: a folder of recordings, with ``expected.jsonl`` saying the language hint, the ITN switch
and (optionally) the expected raw answer of each case. Default: the trained fixture model's clips."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sensevoice_pipeline.constants import DEFAULT_USE_ITN
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.resources import FIXTURE_MODEL_DIR
from sensevoice_pipeline.speech.audio import is_supported
from sensevoice_pipeline.speech.languages import UnknownLanguageError, language_id

DEFAULT_GOLDEN_DIR = FIXTURE_MODEL_DIR  # clips/ + expected.jsonl of the fixture model
MANIFEST = "expected.jsonl"


@dataclass(frozen=True)
class GoldenCase:
    clip: Path
    language: str = "auto"
    use_itn: bool = DEFAULT_USE_ITN
    expected: tuple[str, ...] | None = None  # the raw answer of each segment; None: no expected answer


def golden_root(golden_dir: str | Path | None) -> Path:
    return Path(golden_dir) if golden_dir else DEFAULT_GOLDEN_DIR


def load_golden_set(golden_dir: str | Path | None = None) -> list[GoldenCase]:
    """``expected.jsonl`` when present: one case per line, ``{"clip": <path relative to the dir>, "language":
    "auto", "use_itn": true, "text": <raw answer>}`` (``text``: one string for a recording answered in one
    segment, a list of strings for one answered segment by segment, absent when unknown); else every audio file of
    the dir with hint auto and ITN on."""
    root = golden_root(golden_dir)
    if not root.is_dir():
        raise ReleaseError(f"golden set {root} is not a directory")
    manifest = root / MANIFEST
    if manifest.is_file():
        cases = _read_manifest(root, manifest)
    else:
        cases = [GoldenCase(p) for p in sorted(root.rglob("*")) if p.is_file() and is_supported(p)]
    missing = [str(c.clip) for c in cases if not c.clip.is_file()]
    if missing:
        raise ReleaseError(f"golden set {root}: {len(missing)} clips are missing, e.g. {missing[0]}")
    if not cases:
        raise ReleaseError(f"golden set {root} has no clips")
    return cases


def _read_manifest(root: Path, manifest: Path) -> list[GoldenCase]:
    cases = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            cases.append(_case(root, json.loads(line)))
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, UnknownLanguageError) as exc:
            raise ReleaseError(f"{manifest}:{n}: not a golden case ({exc})") from exc
    return cases


def _case(root: Path, line: dict) -> GoldenCase:
    language = line.get("language", "auto")
    language_id(language)  # an unknown hint is the golden set's fault: say so before anything is sent
    text = line.get("text")
    expected = None if text is None else (text,) if isinstance(text, str) else tuple(str(t) for t in text)
    return GoldenCase(root / line["clip"], language, bool(line.get("use_itn", DEFAULT_USE_ITN)), expected)
