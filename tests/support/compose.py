"""docker-compose.yml as compose reads it: anchors and `<<` merges resolved by PyYAML, `${VAR}` interpolation from
.env values, each service's environment, command, volumes and published ports. tests/integration/deployment/ checks
the file's promises with it; tests/integration/stack/ runs the Airflow services with exactly these settings (only
hosts and ports differ)."""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# Compose interpolation: `$$` is a literal dollar (left to the container's shell), `${VAR...}` and `$VAR` are read
# from the environment / .env.
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# -- what the deployment tests hold the stack to -------------------------------------------------------------------

MODEL_REPOSITORY = ROOT / "model_repository"
AIRFLOW_LONG_RUNNING = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
RELEASE_WORKER = "airflow-release-worker"
ONE_SHOT = {"airflow-init", "minio-init"}
EXPECTED_SERVICES = (
    {"triton", "prometheus", "statsd-exporter", "minio", "postgres", "redis", RELEASE_WORKER}
    | AIRFLOW_LONG_RUNNING
    | ONE_SHOT
)
TRITON_MODELS = {"sensevoice", "sensevoice_encoder"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|FERNET", re.IGNORECASE)
WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}")
# The NGC Triton release whose tritonserver the pinned nvidia-pytriton wheel carries (its python stub is reused).
NGC_RELEASE_OF_PYTRITON = {"0.7.0": "24.10"}  # Triton 2.51
# schema/compose-spec.json of github.com/compose-spec/compose-spec at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6
# (2026-06-23), unchanged. jsonschema comes with apache-airflow (the `airflow` extra) here; pyproject's `dev` extra
# should name it.
COMPOSE_SPEC = ROOT / "tests" / "assets" / "compose-spec.json"
CHECK_SECRETS = ROOT / "docker" / "check-secrets.sh"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
STATSD_MAPPING = ROOT / "deploy" / "statsd" / "mapping.yml"
GRAFANA_DASHBOARD = ROOT / "deploy" / "grafana" / "sensevoice-triton.json"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
# Airflow's queue for tasks that name none ([operators] default_queue), which a `celery worker` without --queues serves.
AIRFLOW_DEFAULT_QUEUE = "default"


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


def strings_in(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)
    elif isinstance(node, str):
        yield node


def referenced_vars(node) -> set[str]:
    names = set()
    for text in strings_in(node):
        for m in INTERPOLATION.finditer(text):
            if m.group(0) != "$$":
                names.add(m.group(1) or m.group(2))
    return names


def triton_ports(service: dict) -> dict[str, int]:
    ports = {"http": 8000, "grpc": 8001, "metrics": 8002}
    for arg in args_of(service.get("command")):
        m = re.fullmatch(r"--(http|grpc|metrics)-port=(\d+)", arg)
        if m:
            ports[m.group(1)] = int(m.group(2))
    return ports


def published(service: dict, values: dict[str, str]) -> list[tuple[str, str]]:
    """(host address, container port) of each published port after interpolation; no address means every one."""
    out = []
    for spec in interpolate(service.get("ports") or [], values):
        if isinstance(spec, dict):
            out.append((spec.get("host_ip") or "0.0.0.0", str(spec["target"])))
            continue
        parts = str(spec).split(":")
        out.append((parts[0] if len(parts) == 3 else "0.0.0.0", parts[-1].split("/")[0]))
    return out
