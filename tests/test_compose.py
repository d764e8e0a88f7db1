"""The production-shaped stack (docker-compose.yml, docker/*.Dockerfile, .env.example), checked by structure: no
Docker engine is needed. The compose file is parsed with PyYAML (anchors and `<<` merges resolved the way compose
resolves them), the Dockerfiles line by line, and both are held against the repository: the model repository, the
pyproject pins, the Airflow provider's connection type."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
MODEL_REPOSITORY = ROOT / "model_repository"

AIRFLOW_LONG_RUNNING = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT = {"airflow-init", "minio-init"}
EXPECTED_SERVICES = {"triton", "minio", "postgres", "redis"} | AIRFLOW_LONG_RUNNING | ONE_SHOT
TRITON_MODELS = {"sensevoice", "sensevoice_encoder"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|FERNET", re.IGNORECASE)
WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}")
# Compose interpolation: `$$` is a literal dollar (left to the container's shell), `${VAR...}` and `$VAR` are read
# from the environment / .env.
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# The NGC Triton release whose tritonserver the pinned nvidia-pytriton wheel carries (its python stub is reused).
NGC_RELEASE_OF_PYTRITON = {"0.7.0": "24.10"}  # Triton 2.51


# --- helpers -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


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
            out.append({"source": vol.get("source"), "target": vol["target"], "read_only": bool(vol.get("read_only")),
                        "type": vol.get("type")})
            continue
        parts = vol.split(":")
        if len(parts) == 1:  # anonymous volume
            out.append({"source": None, "target": parts[0], "read_only": False, "type": "volume"})
            continue
        source, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append({"source": source, "target": target, "read_only": "ro" in mode.split(","), "type": kind})
    return out


def strings_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
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


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped, as Docker reads them."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            logical.append(current.strip())
        current = ""
    if current.strip():
        logical.append(current.strip())
    out = []
    for line in logical:
        instr, _, rest = line.partition(" ")
        out.append((instr.upper(), rest.strip()))
    return out


def is_pinned(ref: str) -> bool:
    """An image reference with a digest, or a tag that is not `latest` (and no unresolved variable)."""
    if "$" in ref:
        return False
    if re.search(r"@sha256:[0-9a-f]{64}$", ref):
        return True
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return bool(tag) and tag != "latest"


def dockerfile_stages(path: Path) -> list[dict]:
    """FROM lines resolved against the ARGs declared before the first FROM: [{image, name, pinned}]."""
    args: dict[str, str] = {}
    stages: list[dict] = []
    for instr, rest in dockerfile_instructions(path):
        if instr == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif instr == "FROM":
            tokens = [t for t in rest.split() if not t.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), tokens[0])
            name = tokens[2].lower() if len(tokens) >= 3 and tokens[1].lower() == "as" else None
            earlier = {s["name"] for s in stages if s["name"]}
            stages.append({"image": image, "name": name, "pinned": image.lower() in earlier or is_pinned(image)})
    return stages


def copy_instructions(path: Path) -> list[dict]:
    out = []
    for instr, rest in dockerfile_instructions(path):
        if instr not in ("COPY", "ADD"):
            continue
        tokens = shlex.split(rest)
        flags = {t.split("=", 1)[0]: t.split("=", 1)[1] if "=" in t else "" for t in tokens if t.startswith("--")}
        paths = [t for t in tokens if not t.startswith("--")]
        out.append({"instr": instr, "from": flags.get("--from"), "sources": paths[:-1], "dest": paths[-1]})
    return out


def built_dockerfile(service: dict) -> Path:
    build = service["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    return context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")


def pin_of(requirements: list[str], name: str) -> str:
    for req in requirements:
        m = re.fullmatch(rf"\s*{re.escape(name)}\s*==\s*([^\s;,]+)\s*", req)
        if m:
            return m.group(1)
    raise AssertionError(f"pyproject pins no {name}==<version> in {requirements}")


def triton_ports(service: dict) -> dict[str, int]:
    ports = {"http": 8000, "grpc": 8001, "metrics": 8002}
    for arg in args_of(service.get("command")):
        m = re.fullmatch(r"--(http|grpc|metrics)-port=(\d+)", arg)
        if m:
            ports[m.group(1)] = int(m.group(2))
    return ports


# --- the services ------------------------------------------------------------------------------------------------


def test_expected_services_exist(services):
    missing = EXPECTED_SERVICES - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_airflow_services_share_the_common_anchor(compose, services):
    text = COMPOSE_FILE.read_text()
    assert re.search(r"^x-airflow-common:\s*&airflow-common\b", text, re.M), "x-airflow-common anchor missing"
    common = compose["x-airflow-common"]
    assert Path(common["build"]["dockerfile"]).name == "airflow.Dockerfile"
    for name in AIRFLOW_LONG_RUNNING | {"airflow-init"}:
        svc = services[name]
        assert svc.get("image") == common["image"] and svc.get("build") == common["build"], name
        env = env_of(svc)
        for key, value in env_of(common).items():
            assert env.get(key) == value, f"{name}: {key} differs from x-airflow-common"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_every_image_is_pinned(services):
    for name, svc in services.items():
        if "image" in svc:
            assert is_pinned(svc["image"]), f"{name}: image {svc['image']!r} is not pinned to a tag (or is latest)"
        if "build" in svc:
            dockerfile = built_dockerfile(svc)
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
            stages = dockerfile_stages(dockerfile)
            assert stages, f"{dockerfile.name}: no FROM"
            for stage in stages:
                assert stage["pinned"], f"{dockerfile.name}: FROM {stage['image']!r} is not pinned"
            stage_names = {s["name"] for s in stages if s["name"]}
            for copy in copy_instructions(dockerfile):
                ref = copy["from"]
                if ref and ref.lower() not in stage_names and not ref.isdigit():
                    assert is_pinned(ref), f"{dockerfile.name}: COPY --from={ref} is not pinned"
        else:
            assert "image" in svc, f"{name}: neither image nor build"


def test_triton_image_is_ngc_24_10_with_the_python_311_stub(services, pyproject):
    dockerfile = built_dockerfile(services["triton"])
    stages = dockerfile_stages(dockerfile)
    pytriton = pin_of(pyproject["project"]["optional-dependencies"]["serve"], "nvidia-pytriton")
    assert pytriton in NGC_RELEASE_OF_PYTRITON, f"which NGC release carries nvidia-pytriton {pytriton}? Update both"
    assert stages[-1]["image"] == f"nvcr.io/nvidia/tritonserver:{NGC_RELEASE_OF_PYTRITON[pytriton]}-py3"
    text = dockerfile.read_text()
    # the stub comes from the same pytriton release the local CPU Triton uses, for the project's Python
    assert re.search(rf"PYTRITON_VERSION={re.escape(pytriton)}\b", text)
    python = re.search(r"(\d+\.\d+)", pyproject["project"]["requires-python"]).group(1)
    assert f"python_backend_stubs/{python}/triton_python_backend_stub" in text
    assert any(c["from"] and c["dest"].rstrip("/") == "/opt/tritonserver/backends/python"
               for c in copy_instructions(dockerfile)), "the python backend stub is not replaced"
    assert f"python{python} -m venv" in text


def test_dockerfiles_install_only_what_each_side_needs(services, pyproject):
    def pip_installs(dockerfile: Path) -> list[str]:
        runs = [rest for instr, rest in dockerfile_instructions(dockerfile) if instr == "RUN"]
        return [m.group(1) for run in runs for m in re.finditer(r"pip install ([^&|;]*)", run)]

    heavy = re.compile(r"\btorch\b|\bfunasr\b|\[[^\]]*\b(export|serve|all|dev)\b[^\]]*\]")
    triton = pip_installs(built_dockerfile(services["triton"]))
    assert any(re.search(r"(^|\s)\.(\s|$)", cmd) for cmd in triton), f"triton image does not install the core: {triton}"
    airflow_pin = pin_of(pyproject["project"]["optional-dependencies"]["airflow"], "apache-airflow")
    airflow_dockerfile = built_dockerfile(services["airflow-worker"])
    airflow = pip_installs(airflow_dockerfile)
    assert any(".[airflow]" in cmd and f"apache-airflow=={airflow_pin}" in cmd for cmd in airflow), airflow
    for cmd in triton + airflow:
        assert not heavy.search(cmd), f"heavy dependency or extra in an image: pip install {cmd}"
    assert dockerfile_stages(airflow_dockerfile)[-1]["image"] == f"apache/airflow:{airflow_pin}-python3.11"
    assert "3.11" in pyproject["project"]["requires-python"]


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context(services):
    ignored = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#") and not line.startswith("!")]
    for needed in (".venv", "var/", ".env", "**/__pycache__"):
        assert needed in ignored, f".dockerignore does not keep {needed} out of the build context"
    for name in ("triton", "airflow-worker"):
        dockerfile = built_dockerfile(services[name])
        for copy in copy_instructions(dockerfile):
            if copy["from"]:
                continue
            matched = []
            for src in copy["sources"]:
                hits = list(ROOT.glob(src)) if any(ch in src for ch in "*?[") else [ROOT / src]
                matched += [h for h in hits if h.exists()]
                for hit in hits:
                    rel = PurePosixPath(hit.relative_to(ROOT).as_posix())
                    for pattern in ignored:
                        pat = pattern.rstrip("/")
                        assert not (fnmatch.fnmatch(str(rel), pat) or fnmatch.fnmatch(rel.parts[0], pat)), \
                            f"{dockerfile.name}: COPY {src} is excluded by .dockerignore ({pattern})"
            assert matched, f"{dockerfile.name}: COPY {copy['sources']} matches nothing in the repository"


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(services):
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert str(svc.get("restart", "no")) == "no", f"{name} is a one-shot: restart must be 'no'"
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable") and args_of(test)[:1] != ["NONE"], f"{name} has no healthcheck"
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: no restart policy"


def test_depends_on_use_conditions(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must be a mapping with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert (spec or {}).get("condition") == expected, f"{name} -> {dep}: condition should be {expected}"
    for name in AIRFLOW_LONG_RUNNING:
        assert {"postgres", "redis", "airflow-init"} <= set(services[name]["depends_on"]), name
    assert set(services["airflow-init"]["depends_on"]) >= {"postgres", "redis"}
    assert "minio" in services["minio-init"]["depends_on"]


# --- Triton ------------------------------------------------------------------------------------------------------


def test_triton_reserves_a_gpu(services):
    devices = services["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), devices


def test_triton_mounts_the_model_repository_read_only(services):
    svc = services["triton"]
    args = args_of(svc["command"])
    repo = [a.split("=", 1)[1] for a in args if a.startswith("--model-repository=")]
    assert len(repo) == 1, f"triton: one --model-repository=... expected in {args}"
    mounts = [v for v in volumes_of(svc) if v["target"].rstrip("/") == repo[0].rstrip("/")]
    assert mounts, f"nothing is mounted at {repo[0]}"
    mount = mounts[0]
    assert mount["type"] == "bind" and (ROOT / mount["source"]).resolve() == MODEL_REPOSITORY.resolve(), mount
    assert mount["read_only"], "the model repository must be mounted read-only"


def test_triton_loads_both_models_explicitly_with_production_configs(services):
    args = args_of(services["triton"]["command"])
    assert args[0] == "tritonserver"
    assert "--model-control-mode=explicit" in args, args
    loaded = {a.split("=", 1)[1] for a in args if a.startswith("--load-model=")}
    assert loaded == TRITON_MODELS, loaded
    for model in loaded:
        config = MODEL_REPOSITORY / model / "config.pbtxt"
        assert config.is_file(), f"--load-model={model}: no {config}"
        assert re.search(rf'^name:\s*"{re.escape(model)}"', config.read_text(), re.M), f"{config}: name differs"
    assert not any(a.startswith("--model-config-name") for a in args), "production serves config.pbtxt"
    assert "KIND_GPU" in (MODEL_REPOSITORY / "sensevoice_encoder" / "config.pbtxt").read_text()


def test_triton_healthcheck_asks_readiness(services):
    svc = services["triton"]
    test = " ".join(args_of(svc["healthcheck"]["test"]))
    assert f"localhost:{triton_ports(svc)['http']}/v2/health/ready" in test, test


# --- Airflow -----------------------------------------------------------------------------------------------------


def test_worker_can_be_scaled(services):
    worker = services["airflow-worker"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, f"airflow-worker sets {fixed}: `--scale airflow-worker=N` would clash"
    assert args_of(worker["command"]) == ["celery", "worker"]


def test_airflow_services_get_the_pipeline_settings(services):
    grpc = triton_ports(services["triton"])["grpc"]
    for name in AIRFLOW_LONG_RUNNING | {"airflow-init"}:
        svc = services[name]
        env = env_of(svc)
        for key in ("SVP_RAW_ROOT", "SVP_LAKE_ROOT", "SVP_WAREHOUSE", "SVP_TRITON_URL"):
            assert env.get(key), f"{name}: {key} not set"
        named = [v["target"] for v in volumes_of(svc) if v["type"] == "volume"]
        for key in ("SVP_RAW_ROOT", "SVP_LAKE_ROOT", "SVP_WAREHOUSE"):
            assert any(env[key] == t or env[key].startswith(t.rstrip("/") + "/") for t in named), \
                f"{name}: {key}={env[key]} is not on a named volume (workers would not share it)"
        assert env["SVP_TRITON_URL"] == f"triton:{grpc}"
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
        assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname in services


def test_init_migrates_and_creates_the_triton_connection(services):
    from sensevoice_pipeline.provider import get_provider_info
    from sensevoice_pipeline.settings import Settings

    script = script_of(services["airflow-init"])
    assert re.search(r"\bairflow db migrate\b", script), "airflow-init does not migrate the database"
    conn_id = Settings.triton_conn_id  # the Connection every task looks up by default
    m = re.search(rf"airflow connections add {re.escape(conn_id)}\s+--conn-json\s+'([^']+)'", script)
    assert m, f"airflow-init does not create the {conn_id} connection"
    conn = json.loads(m.group(1))
    conn_types = {c["connection-type"] for c in get_provider_info()["connection-types"]}
    assert conn["conn_type"] in conn_types, conn
    assert conn["host"] == "triton" and conn["host"] in services
    assert conn["port"] == triton_ports(services["triton"])["grpc"]


def test_minio_init_creates_the_bucket_with_the_pinned_client(services):
    svc = services["minio-init"]
    assert svc["image"].startswith("minio/mc:") and is_pinned(svc["image"])
    script = script_of(svc)
    assert re.search(r"mc mb --ignore-existing \S*SVP_S3_BUCKET", script), script
    assert "http://minio:9000" in script


# --- volumes and secrets -----------------------------------------------------------------------------------------


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    assert declared, "no named volumes declared"
    used = set()
    for name, svc in services.items():
        for vol in volumes_of(svc):
            if vol["type"] == "volume":
                assert vol["source"], f"{name}: anonymous volume at {vol['target']}"
                used.add(vol["source"])
    assert used <= declared, f"volumes used but not declared: {sorted(used - declared)}"
    assert declared <= used, f"volumes declared but unused: {sorted(declared - used)}"
    # the state that must survive a restart sits on named volumes
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("minio", "/data")):
        assert any(v["type"] == "volume" and v["target"] == target for v in volumes_of(services[name])), name


def test_no_inline_secrets(compose, services):
    blocks = {"x-airflow-common": compose["x-airflow-common"], **services}
    for name, svc in blocks.items():
        for key, value in env_of(svc).items():
            if SECRET_NAME.search(key):
                assert value is not None and WHOLE_REFERENCE.fullmatch(value), \
                    f"{name}: {key} must be a ${{VAR}} reference, not {value!r}"
            if value and "://" in value:
                password = urlsplit(value).password
                if password is not None:
                    assert WHOLE_REFERENCE.fullmatch(password), f"{name}: {key} has an inline password"
        for m in re.finditer(r"--password\s+(\S+)", script_of(svc)):
            assert m.group(1).strip("\"'").startswith("$"), f"{name}: literal --password in the command"


def test_every_variable_is_defined_in_env_example(compose):
    used = referenced_vars(compose)
    defined = env_example()
    assert used, "the compose file references no variables"
    assert used <= set(defined), f"used in docker-compose.yml but not in .env.example: {sorted(used - set(defined))}"
    assert set(defined) <= used, f"in .env.example but unused: {sorted(set(defined) - used)}"
    for key, value in defined.items():
        if SECRET_NAME.search(key) and not key.endswith(("_ACCESS_KEY", "_USER")):
            assert value == "" or value.startswith("change-me"), f".env.example: {key} looks like a real secret"


def test_docs_cover_running_and_scaling():
    text = (ROOT / "docs" / "deployment.md").read_text()
    for needed in ("cp .env.example .env", "svp export", "docker compose up", "--scale airflow-worker="):
        assert needed in text, f"docs/deployment.md does not mention {needed!r}"
