"""The production-shaped stack (docker-compose.yml, docker/*.Dockerfile, .env.example, deploy/), checked by structure:
no Docker engine is needed. The compose file is parsed with PyYAML (anchors and `<<` merges resolved the way compose
resolves them) and validated against the compose-spec JSON schema, the Dockerfiles line by line, and both are held
against the repository: the model repository, the pyproject pins, the Airflow provider's connection type, the DAGs.
What can run here runs for real: docker/check-secrets.sh (bash and sh), the DAGs parsed by Airflow with the
compose environment, Triton's metric names read from a local Triton. The release worker's write / Triton's read-only
load is tests/test_release_worker.py.

The schema, tests/assets/compose-spec.json, is schema/compose-spec.json of github.com/compose-spec/compose-spec at
commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (2026-06-23), unchanged. jsonschema comes with apache-airflow (the
`airflow` extra) here; pyproject's `dev` extra should name it (see COMPOSE_SPEC below)."""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.compose import (
    args_of,
    env_example,
    env_of,
    interpolate,
    real_values,
    script_of,
    volumes_of,
)

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
RELEASE_WORKER = "airflow-release-worker"
ONE_SHOT = {"airflow-init", "minio-init"}
EXPECTED_SERVICES = (
    {"triton", "prometheus", "minio", "postgres", "redis", RELEASE_WORKER} | AIRFLOW_LONG_RUNNING | ONE_SHOT
)
TRITON_MODELS = {"sensevoice", "sensevoice_encoder"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|FERNET", re.IGNORECASE)
WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}")
# Compose interpolation: `$$` is a literal dollar (left to the container's shell), `${VAR...}` and `$VAR` are read
# from the environment / .env.
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# The NGC Triton release whose tritonserver the pinned nvidia-pytriton wheel carries (its python stub is reused).
NGC_RELEASE_OF_PYTRITON = {"0.7.0": "24.10"}  # Triton 2.51
COMPOSE_SPEC = (
    ROOT / "tests" / "assets" / "compose-spec.json"
)  # compose-spec@170098ba07d9f53c383a41bfd4c5166b0a4529a6
CHECK_SECRETS = ROOT / "docker" / "check-secrets.sh"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARD = ROOT / "deploy" / "grafana" / "sensevoice-triton.json"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
# Airflow's queue for tasks that name none ([operators] default_queue), which a `celery worker` without --queues serves.
AIRFLOW_DEFAULT_QUEUE = "default"


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
            stages.append(
                {"image": image, "name": name, "pinned": image.lower() in earlier or is_pinned(image)}
            )
    return stages


def stage_instructions(path: Path, target: str) -> list[tuple[str, str]]:
    """The instructions of one build stage (from its FROM up to the next FROM), and of the stages it builds on."""
    stages: dict[str, list] = {}
    parent: dict[str, str | None] = {}
    current = None
    for instr, rest in dockerfile_instructions(path):
        if instr == "FROM":
            tokens = [t for t in rest.split() if not t.startswith("--")]
            current = (
                tokens[2].lower() if len(tokens) >= 3 and tokens[1].lower() == "as" else f"#{len(stages)}"
            )
            stages[current] = []
            parent[current] = tokens[0].lower() if tokens[0].lower() in stages else None
        elif current is not None:
            stages[current].append((instr, rest))
    assert target in stages, f"{path.name}: no stage named {target}"
    chain = [target]
    while parent[chain[0]]:
        chain.insert(0, parent[chain[0]])
    return [i for name in chain for i in stages[name]]


def pip_installs(instructions: list[tuple[str, str]]) -> list[str]:
    runs = [rest for instr, rest in instructions if instr == "RUN"]
    return [m.group(1) for run in runs for m in re.finditer(r"pip install ([^&|;]*)", run)]


def build_target(service: dict) -> str | None:
    build = service.get("build")
    return build.get("target") if isinstance(build, dict) else None


def copy_instructions(path: Path, instructions: list[tuple[str, str]] | None = None) -> list[dict]:
    out = []
    for instr, rest in instructions if instructions is not None else dockerfile_instructions(path):
        if instr not in ("COPY", "ADD"):
            continue
        tokens = shlex.split(rest)
        flags = {
            t.split("=", 1)[0]: t.split("=", 1)[1] if "=" in t else "" for t in tokens if t.startswith("--")
        }
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
            if (
                key == "SVP_CREDENTIAL_VARS"
            ):  # a service may check more secrets than the common ones, never fewer
                assert set(value.split()) <= set(env[key].split()), (
                    f"{name}: checks fewer secrets than the others"
                )
                continue
            assert env.get(key) == value, f"{name}: {key} differs from x-airflow-common"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_every_image_is_pinned(services):
    for name, svc in services.items():
        if "image" in svc:
            assert is_pinned(svc["image"]), (
                f"{name}: image {svc['image']!r} is not pinned to a tag (or is latest)"
            )
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
    assert pytriton in NGC_RELEASE_OF_PYTRITON, (
        f"which NGC release carries nvidia-pytriton {pytriton}? Update both"
    )
    assert stages[-1]["image"] == f"nvcr.io/nvidia/tritonserver:{NGC_RELEASE_OF_PYTRITON[pytriton]}-py3"
    text = dockerfile.read_text()
    # the stub comes from the same pytriton release the local CPU Triton uses, for the project's Python
    assert re.search(rf"PYTRITON_VERSION={re.escape(pytriton)}\b", text)
    python = re.search(r"(\d+\.\d+)", pyproject["project"]["requires-python"]).group(1)
    assert f"python_backend_stubs/{python}/triton_python_backend_stub" in text
    assert any(
        c["from"] and c["dest"].rstrip("/") == "/opt/tritonserver/backends/python"
        for c in copy_instructions(dockerfile)
    ), "the python backend stub is not replaced"
    assert f"python{python} -m venv" in text


def test_dockerfiles_install_only_what_each_side_needs(services, pyproject):
    heavy = re.compile(r"\btorch\b|\bfunasr\b|\[[^\]]*\b(export|serve|all|dev)\b[^\]]*\]")
    triton = pip_installs(dockerfile_instructions(built_dockerfile(services["triton"])))
    assert any(re.search(r"(^|\s)\.(\s|$)", cmd) for cmd in triton), (
        f"triton image does not install the core: {triton}"
    )
    airflow_pin = pin_of(pyproject["project"]["optional-dependencies"]["airflow"], "apache-airflow")
    worker = services["airflow-worker"]
    airflow_dockerfile, target = built_dockerfile(worker), build_target(worker)
    airflow = pip_installs(stage_instructions(airflow_dockerfile, target))
    assert any(".[airflow]" in cmd and f"apache-airflow=={airflow_pin}" in cmd for cmd in airflow), airflow
    for cmd in triton + airflow:
        assert not heavy.search(cmd), f"heavy dependency or extra in an image: pip install {cmd}"
    stage = next(s for s in dockerfile_stages(airflow_dockerfile) if s["name"] == target)
    assert stage["image"] == f"apache/airflow:{airflow_pin}-python3.11"
    assert "3.11" in pyproject["project"]["requires-python"]


def test_the_release_worker_image_adds_the_export_extra_with_cpu_torch(services, pyproject):
    svc = services[RELEASE_WORKER]
    dockerfile, target = built_dockerfile(svc), build_target(svc)
    assert dockerfile == built_dockerfile(services["airflow-worker"]), (
        "one Airflow image definition, two targets"
    )
    assert target and target != build_target(services["airflow-worker"])
    stage = next(s for s in dockerfile_stages(dockerfile) if s["name"] == target)
    assert stage["image"] == build_target(services["airflow-worker"]), (
        "the release worker builds on the Airflow image"
    )
    installs = pip_installs(stage_instructions(dockerfile, target))
    extras = pyproject["project"]["optional-dependencies"]
    torch_pin = pin_of(extras["export"], "torch")
    assert any(
        f"torch=={torch_pin}" in cmd
        and "download.pytorch.org/whl/cpu" in (cmd + dockerfile.read_text())
        and "--index-url" in cmd
        for cmd in installs
    ), f"no CPU torch {torch_pin} first: {installs}"
    assert any(re.search(r"\.\[[^\]]*\bairflow\b[^\]]*\bexport\b[^\]]*\]", cmd) for cmd in installs), installs
    sources = {
        src
        for c in copy_instructions(dockerfile, stage_instructions(dockerfile, target))
        for src in c["sources"]
    }
    for needed in (
        "export",
        "model_repository",
    ):  # the export package + fixture model; the repository template
        assert needed in sources, f"the release worker image does not copy {needed}/"
    assert svc["image"] != services["airflow-worker"]["image"]


def ignore_file_of(dockerfile: Path) -> Path:
    """What BuildKit reads: <Dockerfile>.dockerignore beside the Dockerfile when there is one, else the context's
    .dockerignore (docker/cli docs/reference/commandline/build.md)."""
    own = dockerfile.with_name(dockerfile.name + ".dockerignore")
    return own if own.is_file() else DOCKERIGNORE


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context(services):
    for name in ("triton", "airflow-worker", RELEASE_WORKER):
        dockerfile = built_dockerfile(services[name])
        ignore_file = ignore_file_of(dockerfile)
        ignored = [
            line.strip()
            for line in ignore_file.read_text().splitlines()
            if line.strip() and not line.startswith("#") and not line.startswith("!")
        ]
        for needed in (".venv", "var/", ".env", "**/__pycache__", ".git"):
            assert needed in ignored, f"{ignore_file.name} does not keep {needed} out of the build context"
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
                        assert not (fnmatch.fnmatch(str(rel), pat) or fnmatch.fnmatch(rel.parts[0], pat)), (
                            f"{dockerfile.name}: COPY {src} is excluded by {ignore_file.name} ({pattern})"
                        )
            assert matched, f"{dockerfile.name}: COPY {copy['sources']} matches nothing in the repository"


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(services):
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert str(svc.get("restart", "no")) == "no", f"{name} is a one-shot: restart must be 'no'"
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable") and args_of(test)[:1] != ["NONE"], (
            f"{name} has no healthcheck"
        )
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: no restart policy"


def test_depends_on_use_conditions(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must be a mapping with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert (spec or {}).get("condition") == expected, (
                f"{name} -> {dep}: condition should be {expected}"
            )
    for name in AIRFLOW_LONG_RUNNING | {RELEASE_WORKER}:
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
        assert re.search(rf'^name:\s*"{re.escape(model)}"', config.read_text(), re.M), (
            f"{config}: name differs"
        )
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
    """Every Airflow service reads the data roots from the object store and the lake's catalog from the stack's
    Postgres (no disk shared between workers: they may run on other hosts); its warehouse file is its own."""
    grpc = triton_ports(services["triton"])["grpc"]
    for name in AIRFLOW_LONG_RUNNING | {"airflow-init", RELEASE_WORKER}:
        svc = services[name]
        env = env_of(svc)
        for key in ("SVP_RAW_ROOT", "SVP_LAKE_ROOT", "SVP_WAREHOUSE", "SVP_TRITON_URL", "SVP_CATALOG"):
            assert env.get(key), f"{name}: {key} not set"
        for key in ("SVP_RAW_ROOT", "SVP_LAKE_ROOT"):
            assert env[key].startswith("s3://${SVP_S3_BUCKET}/"), (
                f"{name}: {key}={env[key]} is not in the bucket"
            )
        catalog = urlsplit(env["SVP_CATALOG"])
        assert (catalog.scheme, catalog.hostname, catalog.path) == (
            "postgresql",
            "postgres",
            "/${SVP_CATALOG_DB}",
        )
        assert not any(
            v["type"] == "volume" and env["SVP_WAREHOUSE"].startswith(v["target"]) for v in volumes_of(svc)
        ), f"{name}: the warehouse file is on a shared volume"
        assert env["SVP_TRITON_URL"] == f"triton:{grpc}"
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
        assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname in services


def test_postgres_creates_the_lake_catalogs_own_database_and_role(services):
    svc = services["postgres"]
    mounts = {v["target"]: v for v in volumes_of(svc)}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert init["read_only"] and (ROOT / init["source"]).is_dir()
    script = (ROOT / init["source"] / "10-lake-catalog.sh").read_text()
    assert "CREATE DATABASE" in script and "CREATE ROLE" in script
    assert {"SVP_CATALOG_DB", "SVP_CATALOG_USER", "SVP_CATALOG_PASSWORD"} <= set(env_of(svc))
    assert "SVP_CATALOG_PASSWORD" in env_of(svc)["SVP_CREDENTIAL_VARS"].split()


def test_init_migrates_and_creates_the_triton_connection(services):
    from sensevoice_pipeline.provider import get_provider_info
    from sensevoice_pipeline.settings import Settings

    script = script_of(services["airflow-init"])
    assert re.search(r"\bairflow db migrate\b", script), "airflow-init does not migrate the database"
    conn_id = Settings.triton_conn_id  # the Connection every task looks up by default
    m = re.search(
        rf'airflow connections add {re.escape(conn_id)}\s+--conn-json\s+"((?:[^"\\]|\\.)+)"', script
    )
    assert m, f"airflow-init does not create the {conn_id} connection"
    conn = json.loads(
        m.group(1).replace('\\"', '"').replace("$${SVP_TRITON_HOSTS}", env_example()["SVP_TRITON_HOSTS"])
    )
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
                assert value is not None and WHOLE_REFERENCE.fullmatch(value), (
                    f"{name}: {key} must be a ${{VAR}} reference, not {value!r}"
                )
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
    assert used <= set(defined), (
        f"used in docker-compose.yml but not in .env.example: {sorted(used - set(defined))}"
    )
    assert set(defined) <= used, f"in .env.example but unused: {sorted(set(defined) - used)}"
    for key, value in defined.items():
        if SECRET_NAME.search(key) and not key.endswith(("_ACCESS_KEY", "_USER")):
            assert value == "" or value.startswith("change-me"), (
                f".env.example: {key} looks like a real secret"
            )


def test_docs_cover_running_and_scaling():
    text = (ROOT / "docs" / "deployment.md").read_text()
    for needed in ("cp .env.example .env", "svp export", "docker compose up", "--scale airflow-worker="):
        assert needed in text, f"docs/deployment.md does not mention {needed!r}"


# --- the compose-spec schema -------------------------------------------------------------------------------------


def test_the_compose_file_validates_against_the_compose_spec_schema(compose):
    import jsonschema  # installed with apache-airflow here; see the module docstring

    schema = json.loads(COMPOSE_SPEC.read_text())
    assert schema.get("title") == "Compose Specification" and "services" in schema["properties"]
    validator = jsonschema.Draft7Validator(schema)
    for label, document in (
        ("as written", compose),
        ("interpolated with .env", interpolate(compose, real_values())),
    ):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )
    # the schema is not a formality: a typo'd key is refused
    broken = json.loads(json.dumps(compose))
    broken["services"]["triton"]["volume"] = broken["services"]["triton"].pop("volumes")
    assert list(validator.iter_errors(broken)), "the schema accepted an unknown service key"


# --- one Airflow image: the plugin and what the DAGs import -------------------------------------------------------


def test_the_airflow_image_carries_the_plugin_and_the_dags(compose, services):
    from sensevoice_pipeline.resources import DAGS_DIR, PLUGINS_DIR

    common = compose["x-airflow-common"]
    dockerfile, target = built_dockerfile(common), build_target(common)
    instructions = stage_instructions(dockerfile, target)
    airflow_home = (
        "/opt/airflow"  # the official image's AIRFLOW_HOME; plugins_folder defaults to $AIRFLOW_HOME/plugins
    )
    assert not any(instr == "ENV" and "AIRFLOW_HOME" in rest for instr, rest in instructions)
    for name in AIRFLOW_LONG_RUNNING | {RELEASE_WORKER, "airflow-init"}:
        env = env_of(services[name])
        assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in env and "AIRFLOW__CORE__DAGS_FOLDER" not in env, name
    copies = {
        c["dest"].rstrip("/"): c["sources"]
        for c in copy_instructions(dockerfile, instructions)
        if not c["from"]
    }
    assert copies.get(f"{airflow_home}/plugins") == [f"{PLUGINS_DIR.relative_to(ROOT)}/"], copies
    assert copies.get(f"{airflow_home}/dags") == [f"{DAGS_DIR.relative_to(ROOT)}/"], copies
    assert list(PLUGINS_DIR.glob("*.py")), "nothing to copy in plugins/"
    # the build imports the plugin and both DAGs, so a missing dependency fails the build, not the first page view
    runs = " ".join(rest for instr, rest in instructions if instr == "RUN")
    for module in [p.stem for p in PLUGINS_DIR.glob("*.py")] + [p.stem for p in DAGS_DIR.glob("*.py")]:
        assert re.search(rf"import [\w, ]*\b{module}\b", runs), f"the image build does not import {module}"
    assert services["airflow-apiserver"]["image"] == common["image"], (
        "the api-server serves the page: same image"
    )


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (where a heavy optional import would break the DAG's parse or the page)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _requirement_closure(dist_name: str, extras: set[str]) -> set[str]:
    """Normalised names of ``dist_name`` (with ``extras``) and every distribution it requires, as installed here."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(dist_name, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_what_the_dags_and_the_plugin_import_is_in_the_airflow_image(compose):
    """Every module the DAGs and the plugin import at module level (following the project's own modules) comes from
    the stdlib, the project, or a distribution in the dependency closure of what the image installs: the core and the
    `airflow` extra. A DAG that imported torch at the top would fail here, as it would fail in the image."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    instructions = stage_instructions(
        built_dockerfile(compose["x-airflow-common"]), build_target(compose["x-airflow-common"])
    )
    extras = {
        e
        for cmd in pip_installs(instructions)
        for m in re.finditer(r"\.\[([^\]]*)\]", cmd)
        for e in m.group(1).split(",")
    }
    assert extras == {"airflow"}, extras
    closure = _requirement_closure("sensevoice-pipeline", extras)
    providers = metadata.packages_distributions()
    todo = list((ROOT / "dags").glob("*.py")) + list((ROOT / "plugins").glob("*.py"))
    seen, outside = set(), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _module_imports(path):
            top = name.split(".")[0]
            if top == "sensevoice_pipeline":
                parts = name.split(".")
                for n in range(len(parts), 1, -1):
                    base = ROOT.joinpath(*parts[:n])
                    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                        if candidate.is_file():
                            todo.append(candidate)
                continue
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            dists = {canonicalize_name(d) for d in providers.get(top, [])}
            if not dists & closure:
                outside.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    assert len(seen) > 10, "the import walk did not follow the project's modules"
    assert not outside, f"imported but not installed in the Airflow image (core + airflow extra): {outside}"


# --- the release worker ------------------------------------------------------------------------------------------


def test_the_release_worker_consumes_its_own_queue_and_alone_writes_the_model_repository(compose, services):
    worker, triton = services[RELEASE_WORKER], services["triton"]
    args = args_of(worker["command"])
    assert args[:2] == ["celery", "worker"]
    queues = args[args.index("--queues") + 1].split(",")
    queue = env_of(compose["x-airflow-common"])["SVP_RELEASE_QUEUE"]
    assert queues == [queue] and queue != AIRFLOW_DEFAULT_QUEUE, (queues, queue)
    assert args[args.index("--concurrency") + 1] == "1", "one release at a time (an export needs ~4.5 GB)"
    assert "--queues" not in args_of(services["airflow-worker"]["command"]), (
        "daily workers serve the default queue"
    )
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, fixed

    repo_in_triton = next(
        a.split("=", 1)[1] for a in args_of(triton["command"]) if a.startswith("--model-repository=")
    )

    def repository_mounts(name):
        return [
            v
            for v in volumes_of(services[name])
            if v["type"] == "bind" and (ROOT / v["source"]).resolve() == MODEL_REPOSITORY.resolve()
        ]

    (rw,) = repository_mounts(RELEASE_WORKER)
    assert not rw["read_only"], "the release worker writes versions: read-write"
    assert rw["target"] == env_of(worker)["SVP_MODEL_REPOSITORY"] == repo_in_triton, (
        "the same path in both containers (the release code hands paths to Triton's load API)"
    )
    (ro,) = repository_mounts("triton")
    assert ro["read_only"]
    for name in services:
        for mount in repository_mounts(name):
            assert mount["read_only"] or name == RELEASE_WORKER, (
                f"{name} mounts the model repository read-write"
            )
    assert repository_mounts("airflow-apiserver"), (
        "the page shows model versions: the api-server needs the repository"
    )
    # runs as the owner of the host folder, group 0 (the official image's convention for arbitrary uids)
    assert re.fullmatch(r"\$\{AIRFLOW_UID[^}]*\}:0", worker["user"]), worker.get("user")
    assert "triton" in worker["depends_on"], "stage/canary/promote talk to Triton"


RELEASE_QUEUES_SCRIPT = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=DAGS)
assert not bag.import_errors, bag.import_errors
print("QUEUES", json.dumps({d: sorted({t.queue for t in bag.dags[d].tasks})
                            for d in ("sensevoice_model_release", "sensevoice_daily")}))
"""


@pytest.mark.timeout(180)
def test_the_release_dags_tasks_go_to_the_release_workers_queue(tmp_path, compose, services):
    """The DAGs parsed by Airflow with the compose stack's environment: every release task on the queue only the
    release worker consumes, every daily task on the default queue the daily workers serve."""
    from sensevoice_pipeline.demo.local_airflow import LocalAirflow

    stack_env = interpolate(env_of(compose["x-airflow-common"]), real_values())
    airflow = LocalAirflow(home=tmp_path / "airflow-home")
    env = airflow.env({k: stack_env[k] for k in ("SVP_RELEASE_QUEUE", "SVP_TRITON_POOL")})
    script = RELEASE_QUEUES_SCRIPT.replace("DAGS", repr(str(airflow.dags_folder)))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-3000:]
    queues = json.loads(
        next(line for line in out.stdout.splitlines() if line.startswith("QUEUES ")).split(" ", 1)[1]
    )
    worker_args = args_of(services[RELEASE_WORKER]["command"])
    assert queues["sensevoice_model_release"] == [worker_args[worker_args.index("--queues") + 1]]
    assert queues["sensevoice_daily"] == [AIRFLOW_DEFAULT_QUEUE]


def test_the_release_dag_keeps_a_default_queue_without_the_environment(monkeypatch):
    """Without SVP_RELEASE_QUEUE (a laptop, `airflow dags test`) the DAG still parses, with the default queue name."""
    monkeypatch.delenv("SVP_RELEASE_QUEUE", raising=False)
    source = (ROOT / "dags" / "sensevoice_model_release.py").read_text()
    tree = ast.parse(source)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "release_queue" in funcs and re.search(r'"queue":\s*release_queue\(\)', source)
    namespace: dict = {"os": os}
    for node in tree.body:  # the constants and the function alone: no Airflow import needed
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id.isupper() for t in node.targets
        ):
            exec(compile(ast.Module([node], []), "dag", "exec"), namespace)
    exec(compile(ast.Module([funcs["release_queue"]], []), "dag", "exec"), namespace)
    assert namespace["release_queue"]() == "releases"
    monkeypatch.setenv("SVP_RELEASE_QUEUE", "gpu-releases")
    assert namespace["release_queue"]() == "gpu-releases"


# --- publishing: the api-server on 127.0.0.1 unless switched ------------------------------------------------------


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


def test_every_port_is_published_on_localhost_and_the_api_server_has_a_switch(services):
    values = real_values()
    assert values["AIRFLOW_BIND"] == "127.0.0.1", ".env.example must keep the UI on this host"
    for name, svc in services.items():
        for host, port in published(svc, values):
            assert host == "127.0.0.1", f"{name}: port {port} is published on {host}"
    no_env = {k: v for k, v in values.items() if k != "AIRFLOW_BIND"}
    assert published(services["airflow-apiserver"], no_env) == [("127.0.0.1", "8080")], "default without .env"
    switched = published(services["airflow-apiserver"], {**values, "AIRFLOW_BIND": "0.0.0.0"})
    assert switched == [("0.0.0.0", "8080")]
    doc = DEPLOYMENT_DOC.read_text()
    assert "AIRFLOW_BIND=0.0.0.0" in doc


# --- secrets: containers refuse placeholders ----------------------------------------------------------------------


def run_check(env: dict[str, str], shell: str = "bash", command: tuple[str, ...] = ("echo", "started")):
    base = {"PATH": os.environ["PATH"]}
    return subprocess.run(
        [shell, str(CHECK_SECRETS), *command], env={**base, **env}, capture_output=True, text=True, timeout=30
    )


# bash, and the POSIX sh the third-party images run it with (dash here)
SHELLS = [s for s in ("bash", "sh") if shutil.which(s)]


@pytest.mark.parametrize("shell", SHELLS)
def test_check_secrets_refuses_placeholders_and_empty_values_and_runs_the_command_otherwise(shell):
    ok = run_check(
        {"SVP_CREDENTIAL_VARS": "A B_URL", "A": "s3cr3t-value", "B_URL": "redis://:pw-123@redis:6379/0"},
        shell,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "started", ok.stderr
    cases = {
        "placeholder": ({"A": "change-me-postgres"}, "A is still the .env.example placeholder"),
        "empty": ({"A": ""}, "A is empty"),
        "unset": ({}, "A is not set"),
        "placeholder in a URL": (
            {"A": "postgresql://airflow:change-me-postgres@postgres:5432/airflow"},
            "the password in A is still the .env.example placeholder",
        ),
        "empty password in a URL": ({"A": "redis://:@redis:6379/0"}, "the password in A is empty"),
    }
    for label, (env, message) in cases.items():
        out = run_check({"SVP_CREDENTIAL_VARS": "A", **env}, shell)
        assert out.returncode != 0, f"{label}: started anyway"
        assert message in out.stderr and "refusing to start" in out.stderr, f"{label}: {out.stderr}"
        assert "started" not in out.stdout, label
    for names in ("", "   ", "A;rm", "1A"):
        out = run_check({"SVP_CREDENTIAL_VARS": names, "A": "fine"}, shell)
        assert out.returncode != 0 and "started" not in out.stdout, f"SVP_CREDENTIAL_VARS={names!r} passed"


def secret_names(env: dict[str, str]) -> set[str]:
    """What a service must check: secret-looking variables, and variables holding a URL with a password."""
    names = {k for k in env if SECRET_NAME.search(k)}
    names |= {k for k, v in env.items() if v and "://" in v and urlsplit(v).password is not None}
    return names


def test_every_service_with_secrets_checks_them_before_it_starts(compose, services):
    common_dockerfile = built_dockerfile(compose["x-airflow-common"])
    image_entrypoint = [
        rest for instr, rest in dockerfile_instructions(common_dockerfile) if instr == "ENTRYPOINT"
    ]
    assert image_entrypoint and all("/usr/local/bin/check-secrets.sh" in e for e in image_entrypoint), (
        image_entrypoint
    )
    copies = [
        c for c in copy_instructions(common_dockerfile) if c["dest"] == "/usr/local/bin/check-secrets.sh"
    ]
    assert copies and copies[0]["sources"] == [CHECK_SECRETS.relative_to(ROOT).as_posix()]
    for name, svc in services.items():
        env = env_of(svc)
        needed = secret_names(env)
        if not needed:
            continue
        listed = set((env.get("SVP_CREDENTIAL_VARS") or "").split())
        assert needed <= listed, f"{name}: SVP_CREDENTIAL_VARS misses {sorted(needed - listed)}"
        if "build" in svc and built_dockerfile(svc) == common_dockerfile:
            assert "entrypoint" not in svc, name  # the Airflow image's own entrypoint runs the check
            continue
        entrypoint = args_of(svc.get("entrypoint"))
        mounted = {v["target"]: v for v in volumes_of(svc) if v["type"] == "bind"}
        assert entrypoint[:2] == ["/bin/sh", "/usr/local/bin/check-secrets.sh"] and len(entrypoint) > 2, (
            f"{name}: the entrypoint does not start with the secrets check: {entrypoint}"
        )
        mount = mounted.get("/usr/local/bin/check-secrets.sh")
        assert mount and mount["read_only"] and (ROOT / mount["source"]).resolve() == CHECK_SECRETS, name


def test_the_stack_refuses_the_env_example_and_starts_with_generated_secrets(services):
    """Each service's environment as compose builds it, handed to the real script: with .env.example as it is,
    every service holding a secret refuses; with generated secrets, every one starts."""
    placeholder_values = env_example()
    refused, started = [], []
    for name, svc in services.items():
        if "SVP_CREDENTIAL_VARS" not in env_of(svc):
            continue
        try:
            env = interpolate(env_of(svc), placeholder_values)
        except ValueError:
            refused.append(name)  # compose itself refuses (${VAR:?...} on an empty value)
        else:
            out = run_check({k: v for k, v in env.items() if v is not None})
            assert out.returncode != 0 and "refusing to start" in out.stderr, f"{name} starts on placeholders"
            refused.append(name)
        out = run_check({k: v for k, v in interpolate(env_of(svc), real_values()).items() if v is not None})
        assert out.returncode == 0 and out.stdout.strip() == "started", f"{name}: {out.stderr}"
        started.append(name)
    assert (
        set(refused)
        == set(started)
        >= {"postgres", "redis", "minio", "minio-init", "airflow-apiserver", "airflow-init", RELEASE_WORKER}
    )


def test_every_bind_source_from_env_is_a_path(services):
    values = env_example()
    for name, svc in services.items():
        for vol in volumes_of(svc):
            if vol["source"] and vol["source"].startswith("$"):
                source = interpolate(vol["source"], values)
                assert source.startswith(("./", "/")), (
                    f"{name}: {vol['source']} -> {source!r} is not a host path"
                )


# --- Triton metrics: Prometheus, queries, dashboard ---------------------------------------------------------------


def test_prometheus_scrapes_triton_with_the_shipped_config(services):
    prom, triton = services["prometheus"], services["triton"]
    assert prom["image"].startswith("prom/prometheus:v") and is_pinned(prom["image"])
    args = args_of(prom["command"])
    config_path = next(a.split("=", 1)[1] for a in args if a.startswith("--config.file="))
    mount = next(v for v in volumes_of(prom) if v["target"] == config_path)
    assert (
        mount["type"] == "bind"
        and mount["read_only"]
        and (ROOT / mount["source"]).resolve() == PROMETHEUS_CONFIG
    )
    storage = next(a.split("=", 1)[1] for a in args if a.startswith("--storage.tsdb.path="))
    assert any(v["type"] == "volume" and v["target"] == storage for v in volumes_of(prom)), (
        "TSDB not on a volume"
    )
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "triton"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"triton:{triton_ports(triton)['metrics']}"], targets
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "triton" in prom["depends_on"]


def promql_of_dashboard() -> list[str]:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def promql_of_docs() -> list[str]:
    """The `...` cells of the queries table in docs/deployment.md that use a Triton metric."""
    return [
        q
        for q in re.findall(r"`([^`\n]*\bnv_\w+[^`\n]*)`", DEPLOYMENT_DOC.read_text())
        if "(" in q or " " not in q
    ]


def test_documented_queries_cover_queue_compute_rate_and_failures_per_model_and_version():
    docs, dashboard = promql_of_docs(), promql_of_dashboard()
    assert set(dashboard) <= set(docs), (
        f"dashboard queries missing from docs/deployment.md: {set(dashboard) - set(docs)}"
    )
    text = " ".join(docs)
    for metric in (
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_request_success",
        "nv_inference_request_failure",
    ):
        assert metric in text, metric
    for query in docs:
        if query.startswith("sum by (model, version)") or "by (model, version)" in query:
            continue
        assert query.startswith(("nv_gpu_", "sum by (model)")) or "(" not in query, f"not per model: {query}"


def test_the_queries_use_metric_names_a_real_triton_exports(triton):
    """Every metric a documented query uses, read from the local Triton's /metrics (Triton 2.51, the NGC 24.10
    release): per model and version. GPU metrics only exist on a GPU host and are left out here."""
    from sensevoice_pipeline.serving.client import transcribe_sync
    from tests.conftest import synthetic_clip

    transcribe_sync([synthetic_clip(1.0, seed=1)], "en", url=triton.grpc_url)
    with urllib.request.urlopen(f"http://{triton.host}:{triton.metrics_port}/metrics", timeout=10) as resp:
        exported = resp.read().decode()
    used = {m for q in promql_of_docs() + promql_of_dashboard() for m in re.findall(r"\bnv_\w+", q)}
    for metric in sorted(used):
        if metric.startswith(("nv_gpu_", "nv_energy_")):
            continue
        lines = [line for line in exported.splitlines() if line.startswith(metric + "{")]
        assert lines, f"{metric} is not exported by Triton"
        if metric != "nv_inference_pending_request_count":
            assert any('model="sensevoice"' in line and 'version="1"' in line for line in lines), lines[:3]


# --- the TensorRT cache volume and the docs -----------------------------------------------------------------------


def test_triton_has_a_writable_volume_where_the_tensorrt_variant_keeps_its_timing_cache(services):
    text = (MODEL_REPOSITORY / "sensevoice_encoder" / "configs" / "tensorrt.pbtxt").read_text()
    (cache_path,) = re.findall(r'key: "trt_timing_cache_path" value: "([^"]+)"', text)
    mounts = [v for v in volumes_of(services["triton"]) if v["target"] == cache_path]
    assert len(mounts) == 1 and mounts[0]["type"] == "volume" and not mounts[0]["read_only"], mounts
    assert cache_path in DEPLOYMENT_DOC.read_text()


def test_docs_cover_the_release_worker_the_bind_switch_secrets_and_prometheus(services):
    text = DEPLOYMENT_DOC.read_text()
    for needed in (
        RELEASE_WORKER,
        "SVP_RELEASE_QUEUE",
        "AIRFLOW_BIND",
        "AIRFLOW_UID",
        "check-secrets.sh",
        "SVP_CREDENTIAL_VARS",
        "prometheus",
        "deploy/grafana/sensevoice-triton.json",
        "/trt-cache",
        "compose-spec",
    ):
        assert needed in text, f"docs/deployment.md does not mention {needed!r}"
    for name in services:
        assert f"`{name}`" in text, f"docs/deployment.md does not list the service {name}"


# --- Triton's control plane (issue 28) ----------------------------------------------------------------------------


def test_triton_locks_its_control_plane_with_the_key_only_the_release_worker_holds(services):
    from sensevoice_pipeline.serving.admin import KEY_ENV, restricted_api_args

    triton = services["triton"]
    assert set(restricted_api_args("${SVP_TRITON_ADMIN_KEY}")) <= set(args_of(triton["command"]))
    assert KEY_ENV in env_of(triton)["SVP_CREDENTIAL_VARS"].split()
    holders = {name for name, svc in services.items() if KEY_ENV in env_of(svc)}
    assert holders == {"triton", RELEASE_WORKER}, holders
    assert KEY_ENV in env_of(services[RELEASE_WORKER])["SVP_CREDENTIAL_VARS"].split()
    assert env_example()[KEY_ENV].startswith("change-me")  # check-secrets.sh refuses it until replaced


def test_only_what_sends_triton_requests_joins_its_network(compose, services):
    def networks(svc: dict) -> set[str]:
        value = svc.get("networks") or ["default"]
        return set(value) if isinstance(value, list) else set(value)

    assert networks(services["triton"]) == {"serving"}
    on_serving = {name for name, svc in services.items() if "serving" in networks(svc)}
    assert on_serving == {"triton", "prometheus", "airflow-worker", RELEASE_WORKER, "airflow-apiserver"}, (
        on_serving
    )
    assert {"default", "serving"} <= set(compose["networks"])
