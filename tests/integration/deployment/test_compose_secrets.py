"""Volumes and secrets in the production-shaped stack: named volumes declared, no inline secrets, every variable in
.env.example, the compose file valid against the compose-spec JSON schema (tests/assets/compose-spec.json), every
port published on 127.0.0.1 unless switched, and docker/check-secrets.sh (run for real under bash and sh) refusing
placeholders, so that every service with a secret checks it before it starts. The compose file and the Dockerfiles
are parsed by tests/support/compose.py and tests/support/dockerfile.py; the fixtures `compose`, `services` and
`pyproject` are tests/integration/deployment/conftest.py's. No Docker engine is needed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.support.compose import (
    CHECK_SECRETS,
    COMPOSE_SPEC,
    DEPLOYMENT_DOC,
    RELEASE_WORKER,
    ROOT,
    SECRET_NAME,
    WHOLE_REFERENCE,
    args_of,
    env_example,
    env_of,
    interpolate,
    published,
    real_values,
    referenced_vars,
    script_of,
    volumes_of,
)
from tests.support.dockerfile import (
    built_dockerfile,
    copy_instructions,
    dockerfile_instructions,
)

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


# --- publishing: the api-server on 127.0.0.1 unless switched ------------------------------------------------------


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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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
