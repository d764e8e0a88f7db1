"""The production-shaped stack's services (docker-compose.yml, docker/*.Dockerfile), checked by structure: every
service there, the Airflow services on one anchor, every image pinned, the Triton image with the python 3.11 stub,
each image installing only what its side needs, COPY sources in the build context, healthchecks and restart
policies, depends_on with conditions. The compose file and the Dockerfiles are parsed by tests/support/compose.py
and tests/support/dockerfile.py; the fixtures `compose`, `services` and `pyproject` are
tests/integration/deployment/conftest.py's. No Docker engine is needed."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path, PurePosixPath

from tests.support.compose import (
    AIRFLOW_LONG_RUNNING,
    COMPOSE_FILE,
    EXPECTED_SERVICES,
    NGC_RELEASE_OF_PYTRITON,
    ONE_SHOT,
    RELEASE_WORKER,
    ROOT,
    args_of,
    env_of,
)
from tests.support.dockerfile import (
    build_target,
    built_dockerfile,
    copy_instructions,
    dockerfile_instructions,
    dockerfile_stages,
    ignore_file_of,
    is_pinned,
    pin_of,
    pip_installs,
    stage_instructions,
)

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
