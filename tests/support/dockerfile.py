"""docker/*.Dockerfile as Docker reads them: instructions with continuation lines joined, build stages with their
base images resolved against the ARGs before the first FROM, what each stage copies and pip-installs. The
deployment tests (tests/integration/deployment/) hold these against the compose file and the repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.support.compose import ROOT

DOCKERIGNORE = ROOT / ".dockerignore"


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


def ignore_file_of(dockerfile: Path) -> Path:
    """What BuildKit reads: <Dockerfile>.dockerignore beside the Dockerfile when there is one, else the context's
    .dockerignore (docker/cli docs/reference/commandline/build.md)."""
    own = dockerfile.with_name(dockerfile.name + ".dockerignore")
    return own if own.is_file() else DOCKERIGNORE


def pin_of(requirements: list[str], name: str) -> str:
    for req in requirements:
        m = re.fullmatch(rf"\s*{re.escape(name)}\s*==\s*([^\s;,]+)\s*", req)
        if m:
            return m.group(1)
    raise AssertionError(f"pyproject pins no {name}==<version> in {requirements}")
