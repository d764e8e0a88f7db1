"""The plugin page's "Model versions" rows: what the model repository holds, the roles its optional ``serving.json``
gives them, and how many utterances of the date range each version transcribed.

The repository is ``Settings.model_repository`` (``$SVP_MODEL_REPOSITORY``, default ``model_repository``). A version that transcribed utterances
but is not in the repository is listed too, so the table accounts for every utterance of the range.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensevoice_pipeline.errors import SvpError
from sensevoice_pipeline.releases.state import read_state
from sensevoice_pipeline.serving.repository import ModelRepository
from sensevoice_pipeline.ui.page_text import display_text


@dataclass
class ModelRow:
    version: str
    status: str
    role: str = ""  # from serving.json when there is one: serving, previous, staged, retired
    precision: str = ""
    target_device: str = ""
    exporter: str = ""
    parameters: str = ""
    source: str = ""
    exported_at: str = ""
    parity: str = ""
    utterances: int | None = None  # transcribed with this version in the date range
    dates: str = ""


def version_label(value: Any, none: str = "(none)") -> str:
    return none if value is None else str(value)


def model_rows(path: Path, usage: list[dict], notes: list[str]) -> tuple[list[ModelRow], dict | None]:
    """One row per version in the repository, then one per version only the utterances name; and ``serving.json``.
    ``usage``: the range's utterances per model version (the canned ``model-usage`` query). Problems become ``notes``."""
    repo = ModelRepository(path)
    used = {version_label(u["model_version"], ""): u for u in usage}
    rows = []
    if not path.is_dir():
        notes.append(
            "No model repository at the configured path (set SVP_MODEL_REPOSITORY)."
        )  # path not shown
    for version in repo.versions():
        row = _repository_row(repo, version)
        _add_usage(row, used.pop(str(version), None))
        rows.append(row)
    for version, u in sorted(used.items()):  # transcribed by a version this repository does not hold
        row = ModelRow(version=version or "(none)", status="not in this repository")
        _add_usage(row, u)
        rows.append(row)
    serving = read_serving(path)
    roles = _roles(serving or {})
    for row in rows:
        row.role = roles.get(row.version, "")
    return rows, serving


def _repository_row(repo: ModelRepository, version: int) -> ModelRow:
    """A version's row from its files and ``export_meta.json``; a field the metadata lacks stays empty."""
    info = repo.version_info(version)
    meta = info.meta if isinstance(info.meta, dict) else {}
    parity = meta.get("parity") or {}
    source = meta.get("source") or {}
    params = (meta.get("architecture") or {}).get("parameters")
    return ModelRow(
        version=str(version),
        status="complete" if info.complete else incomplete_status(version, info.problems),
        precision=str(meta.get("precision", "")),
        target_device=str(meta.get("target_device", "")),
        exporter=" ".join(str(x) for x in (meta.get("exporter", ""), _opset(meta)) if x),
        parameters=f"{params / 1e6:.1f} M" if isinstance(params, (int, float)) else "",
        source=str(source.get("model", "")) if isinstance(source, dict) else "",
        exported_at=_when(meta.get("exported_at")),
        parity=_parity(parity) if isinstance(parity, dict) else "",
    )


def _when(value: Any) -> str:
    """An ISO timestamp as UTC ``YYYY-MM-DD HH:MM:SS``; anything else as its text."""
    try:
        return display_text(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return display_text(value)


def _roles(serving: dict) -> dict[str, str]:
    """Version -> role, for the keys a serving record of the release tooling has (others are ignored)."""
    roles: dict[str, str] = {}
    for key in ("retired", "staged", "previous", "serving"):  # the later wins for a version named twice
        value = serving.get(key)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, str)) and not isinstance(v, bool) and str(v):
                roles[str(v)] = key
    return roles


def _opset(meta: dict) -> str:
    return f"opset {meta['opset']}" if meta.get("opset") is not None else ""


def _parity(p: dict) -> str:
    parts = []
    if isinstance(p.get("max_abs"), (int, float)):
        parts.append(f"max abs {p['max_abs']:.1e}")
    if isinstance(p.get("min_cosine"), (int, float)):
        parts.append(f"cosine {p['min_cosine']:.6f}")
    if isinstance(p.get("argmax_agreement"), (int, float)):
        parts.append(f"argmax {p['argmax_agreement']:.2%}")
    if "passed" in p:
        parts.append("passed" if p["passed"] else "FAILED")
    return ", ".join(parts)


def _add_usage(row: ModelRow, usage: dict | None) -> None:
    if usage:
        row.utterances = int(usage["utterances"])
        first, last = usage["first_date"], usage["last_date"]
        row.dates = str(first) if first == last else f"{first} – {last}"


def read_serving(repository: Path) -> dict | None:
    """The repository's ``serving.json`` as the release tooling records it (``releases.state``), shown when there is
    one; None when there is none or it cannot be read (the page shows the versions without roles then)."""
    try:
        state = read_state(repository)
    except (SvpError, OSError, ValueError):
        return None
    return state.to_dict() if state.recorded else None


def incomplete_status(version: int, problems: list[str]) -> str:
    """The first problem, and how many more: a version missing its files has a dozen, which made its row a column
    of text as tall as the page (seen in the browser test's screenshot); `svp models show` lists them all."""
    more = len(problems) - 1
    return f"incomplete: {problems[0]}" + (f" (+{more} more: svp models show {version})" if more > 0 else "")
