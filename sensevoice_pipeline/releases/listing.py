"""What `svp models list` and `svp models show` say: every version with its export meta and role, what each running
Triton of the fleet has loaded (and whether the servers drift apart), and their text renderings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sensevoice_pipeline.releases.control import STAGED_MODEL, TritonControl, open_fleet
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.state import ServingState, open_repository, read_state
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, META_FILE, MODELS, PIPELINE_MODEL

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True)
class VersionRow:
    version: int
    complete: bool
    problems: tuple[str, ...]
    role: str  # serving | previous | staged | retired | ""
    precision: str | None
    exporter: str | None
    source_sha256: str | None
    exported_at: str | None
    parity: dict
    server: (
        str | None
    )  # default | ready | staged | encoder | - ; per server joined by "/"; None without a server
    meta: dict

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problems"] = list(self.problems)
        return d


def source_checksum(meta: dict) -> str | None:
    """The checkpoint's fingerprint: the sha256 of its weights file (model.pt), else of all its files."""
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    sums = source.get("sha256") or {}
    if not isinstance(sums, dict) or not sums:
        return None
    weights = [v for k, v in sums.items() if k.endswith(WEIGHT_SUFFIXES)]
    if weights:
        return weights[0]
    return hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()


def list_versions(
    repository: str | Path, url: str | None = None
) -> tuple[list[VersionRow], ServingState, dict]:
    """Every version with its meta and roles; with ``url`` (one server or several, comma-separated), also what each
    server has loaded. The third item describes the first server (url, default version, whether it agrees with
    serving.json), every server under ``servers``, and ``drift``: whether any server answers unpinned requests with
    another version than serving.json, or has another set of versions loaded than the others."""
    repo = open_repository(repository)
    state = read_state(repo.path)
    with open_fleet(url) as fleet:
        servers = [_server_view(control, state) for control in fleet]
    server = {**servers[0], "servers": servers, "drift": _drift(servers, state.staged)} if servers else {}
    rows = []
    for v in repo.versions():
        info = repo.version_info(v)
        meta = info.meta
        parity = meta.get("parity") if isinstance(meta.get("parity"), dict) else {}
        rows.append(
            VersionRow(
                version=v,
                complete=info.complete,
                problems=info.problems,
                role=_role(v, state),
                precision=_text(meta.get("precision")),
                exporter=_text(meta.get("exporter")),
                source_sha256=source_checksum(meta),
                exported_at=_text(meta.get("exported_at")),
                parity=parity,
                server="/".join(_where_loaded(v, s["loaded"], s["default_version"]) for s in servers)
                if servers
                else None,
                meta=meta,
            )
        )
    return rows, state, server


def _server_view(control: TritonControl, state: ServingState) -> dict:
    loaded = {m: control.ready_versions(m) for m in (*MODELS, STAGED_MODEL)}
    default = max(loaded[PIPELINE_MODEL], default=None)
    return {
        "url": control.url,
        "default_version": default,
        "agrees": state.serving is None or default == state.serving,
        "loaded": {m: sorted(v) for m, v in loaded.items()},
    }


def _drift(servers: list[dict], staged: int | None) -> bool:
    """A server serving another version than serving.json, or two servers with different `sensevoice` or encoder
    sets loaded (the staged candidate and its encoder live on the canary server only, so they do not count)."""
    sets = {tuple(tuple(v for v in s["loaded"][m] if v != staged) for m in MODELS) for s in servers}
    return not all(s["agrees"] for s in servers) or len(sets) > 1


def _role(version: int, state: ServingState) -> str:
    return (
        "serving"
        if version == state.serving
        else "staged"
        if version == state.staged
        else "previous"
        if version == state.previous
        else "retired"
        if version in state.retired
        else ""
    )


def _where_loaded(version: int, loaded: dict[str, list[int]], default: int | None) -> str:
    if version == default:
        return "default"
    if version in loaded[PIPELINE_MODEL]:
        return "ready"
    if version in loaded[STAGED_MODEL]:
        return "staged"
    if version in loaded[ENCODER_MODEL]:
        return "encoder"
    return "-"


def show_version(repository: str | Path, version: int, url: str | None = None) -> dict:
    rows, state, server = list_versions(repository, url)
    for row in rows:
        if row.version == version:
            return {**row.to_dict(), "serving_state": state.to_dict(), "server_info": server}
    have = ", ".join(str(r.version) for r in rows) or "none"
    raise ReleaseError(f"unknown version {version} (the repository has: {have})")


# -- text ------------------------------------------------------------------------------------------------------------


def format_parity(parity: dict) -> str:
    if not parity:
        return "-"
    return (
        f"max|d| {_number(parity.get('max_abs')):.1e} cos {_number(parity.get('min_cosine')):.5f} "
        f"argmax {_number(parity.get('argmax_agreement')):.1%}"
    )


def format_versions(rows: list[VersionRow], state: ServingState, server: dict) -> str:
    header = ["VERSION", "ROLE", "SERVER", "PRECISION", "SOURCE", "EXPORTED", "PARITY", "FILES"]
    table = [header]
    for r in rows:
        table.append(
            [
                str(r.version),
                r.role or "-",
                r.server if r.server is not None else "?",
                r.precision or "-",
                (r.source_sha256 or "-")[:12],
                r.exported_at or "-",
                format_parity(r.parity),
                "complete" if r.complete else "incomplete",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    origin = "serving.json" if state.recorded else "config version_policy (no serving.json yet)"
    lines.append(
        f"# serving {_or_dash(state.serving)} (previous {_or_dash(state.previous)}, "
        f"staged {_or_dash(state.staged)}) from {origin}"
    )
    for one in server.get("servers", []):
        lines.append(
            f"# Triton at {one['url']} answers unpinned requests with version "
            f"{_or_dash(one['default_version'])}"
            + ("" if one["agrees"] else "  <-- differs from serving.json: run `svp models promote`")
        )
    if server.get("drift"):
        lines.append(
            f"# DRIFT: the {len(server['servers'])} servers do not all have the same versions loaded "
            f"(SERVER column: one state per server, in --url order); `svp models promote "
            f"{_or_dash(state.serving)}` with every server's --url brings them back together"
        )
    if not server:
        lines.append("# SERVER ?: pass --url to see what a running Triton has loaded")
    return "\n".join(lines)


def format_show(d: dict) -> str:
    lines = [
        f"version {d['version']}: {d['role'] or 'no role'}"
        + (f", on the server: {d['server']}" if d["server"] is not None else ""),
        f"  files:      {'complete' if d['complete'] else 'incomplete: ' + '; '.join(d['problems'])}",
        f"  precision:  {d['precision'] or '-'} ({d['exporter'] or '-'} exporter)",
        f"  source:     {_source_model(d['meta']) or '-'}  sha256 {d['source_sha256'] or '-'}",
        f"  exported:   {d['exported_at'] or '-'}",
        f"  parity:     {format_parity(d['parity'])}"
        + (f" ({'passed' if d['parity'].get('passed') else 'FAILED'})" if d["parity"] else ""),
        f"  {META_FILE}:",
        *("    " + line for line in json.dumps(d["meta"], indent=2).splitlines()),
    ]
    return "\n".join(lines)


def _number(value) -> float:
    """A figure of export_meta.json for display (NaN when absent or not a number: the meta check says why)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def _text(value) -> str | None:
    return None if value is None else str(value)


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def _source_model(meta: dict) -> str | None:
    source = meta.get("source")
    return _text(source.get("model")) if isinstance(source, dict) else None
