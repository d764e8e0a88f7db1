"""docker-compose.yml as compose reads it: anchors and `<<` merges resolved by PyYAML, `${VAR}` interpolation from
.env values, each service's environment, command and volumes. tests/test_compose.py checks the file's promises
with it; tests/test_stack.py runs the Airflow services with exactly these settings (only hosts and ports differ)."""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def args_of(value) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def script_of(service: dict) -> str:
    """The whole command (entrypoint + command) as one text, for shell scripts given as `bash -c '...'`; shell line
    continuations are joined."""
    text = "\n".join(args_of(service.get("entrypoint")) + args_of(service.get("command")))
    return re.sub(r"\\\n\s*", " ", text)


def volumes_of(service: dict) -> list[dict]:
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            out.append(
                {
                    "source": vol.get("source"),
                    "target": vol["target"],
                    "read_only": bool(vol.get("read_only")),
                    "type": vol.get("type"),
                }
            )
            continue
        parts = vol.split(":")
        if len(parts) == 1:  # anonymous volume
            out.append({"source": None, "target": parts[0], "read_only": False, "type": "volume"})
            continue
        source, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
        # a ${VAR} source is a host path set in .env (test_every_bind_source_from_env_is_a_path)
        kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
        out.append({"source": source, "target": target, "read_only": "ro" in mode.split(","), "type": kind})
    return out


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert "=" in line, f".env.example: not KEY=VALUE: {line!r}"
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def interpolate(node, values: dict[str, str]):
    """The compose file as compose sees it after interpolation with ``values`` (.env): ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$$` is a literal dollar."""

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2) or "", m.group(3) or ""
        value = values.get(name)
        if op in (":-", ":?") and not value or op in ("-", "?") and value is None:
            if op.endswith("?"):
                raise ValueError(f"compose refuses: {name}: {arg}")
            return arg
        return value or ""

    pattern = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
    if isinstance(node, dict):
        return {k: interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, values) for v in node]
    if isinstance(node, str):
        return pattern.sub(one, node)
    return node


def real_values() -> dict[str, str]:
    """.env.example with every placeholder secret replaced the way docs/deployment.md says (generated values)."""
    values = env_example()
    for key, value in values.items():
        if value.startswith("change-me"):
            values[key] = secrets.token_urlsafe(24)
    values["AIRFLOW_FERNET_KEY"] = (
        "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="  # the format of a Fernet key
    )
    return values
