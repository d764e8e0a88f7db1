"""``version_policy`` in the model configs: which versions Triton loads for a model.

Reading goes through protobuf's text format on Triton's own ``ModelConfig`` message. Writing replaces only the
``version_policy`` field's text, found with protobuf's text-format tokenizer (which knows comments and strings), so
the explanatory comments of a production config.pbtxt stay where they are; every edited file must still parse as a
``ModelConfig`` with exactly the intended policy before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline.atomic import write_atomic
from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.serving.repository import ModelRepository, versions_under_policy

POLICY_FIELD = "version_policy"
OPENING, CLOSING = "{<[", "}>]"  # a message value is {...} or <...>; a list value is [...]


def config_files(repository: str | Path, model: str) -> list[Path]:
    """Every config of ``model``: config.pbtxt (production) and configs/*.pbtxt (e.g. the local CPU one)."""
    mdir = Path(repository) / model
    files = [mdir / "config.pbtxt"] if (mdir / "config.pbtxt").is_file() else []
    return files + sorted((mdir / "configs").glob("*.pbtxt"))


def parse_config_text(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return parse_config_text(path.read_text())


def policy_versions(repository: str | Path, model: str) -> list[int]:
    """The versions Triton loads for ``model`` under its config.pbtxt's version_policy."""
    repo = ModelRepository(repository)
    files = config_files(repo.path, model)
    if not files:
        return []
    policy = parse_config(files[0]).version_policy
    present = sorted(v for v in repo.versions() if repo.version_dir(model, v).is_dir())
    return versions_under_policy(policy, present)


def pipeline_versions(serving: int, standby: int | None) -> list[int]:
    """`sensevoice` loads the serving version, and the previous one as warm standby only when it is lower (the
    highest ready version is the one unpinned requests reach)."""
    return sorted({serving} | ({standby} if standby is not None and standby < serving else set()))


def version_policy_text(versions: list[int]) -> str:
    listed = ", ".join(str(v) for v in sorted(set(versions)))
    return f"{POLICY_FIELD}: {{ specific: {{ versions: [ {listed} ] }} }}"


def replace_version_policy(text: str, versions: list[int]) -> str:
    """``text`` (a config.pbtxt) with its version_policy field replaced (or appended); comments and everything
    else stay as they are."""
    new = version_policy_text(versions)
    span = top_level_field_span(text, POLICY_FIELD)
    if span is None:
        return text.rstrip("\n") + "\n" + new + "\n"
    start, end = span
    return text[:start] + new + text[end:]


def top_level_field_span(text: str, name: str) -> tuple[int, int] | None:
    """(start, end) offsets in ``text`` of the top-level field ``name``, from its name to the end of its value,
    or None when the text has no such field. Protobuf's tokenizer skips the comments and keeps each string one
    token, so nesting is counted on real delimiters only."""
    lines = text.split("\n")  # as text_format.Parse splits it: the tokenizer's line numbers index this list
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line) + 1)
    tokenizer = text_format.Tokenizer(lines)
    depth, start = 0, None
    while not tokenizer.AtEnd():
        token = tokenizer.token
        if start is None and depth == 0 and token == name:
            start = _offset(tokenizer, line_starts)
        elif token in OPENING:
            depth += 1
        elif token in CLOSING:
            depth -= 1
        if start is not None and depth == 0 and token != name and token != ":":
            return start, _offset(tokenizer, line_starts) + len(
                token
            )  # a closing delimiter or a scalar value
        tokenizer.NextToken()
    if start is not None:
        raise ReleaseError(f"the {name} field of a config has no complete value")
    return None


def _offset(tokenizer: text_format.Tokenizer, line_starts: list[int]) -> int:
    """The text offset of the tokenizer's current token. The tokenizer tells positions only through the
    ParseError it builds (1-based line and column), so ask it for one."""
    here = tokenizer.ParseError("position")
    return line_starts[here.GetLine() - 1] + here.GetColumn() - 1


def set_version_policy(repository: str | Path, model: str, versions: list[int]) -> dict[Path, str]:
    """Write ``version_policy: { specific: { versions: [...] } }`` into every config of ``model``, each file
    atomically; every result must parse as a Triton ModelConfig. Returns the old texts (for ``restore_configs``)."""
    if not versions:
        raise ReleaseError(f"refusing to give {model} an empty version policy")
    old: dict[Path, str] = {}
    new: dict[Path, str] = {}
    for path in config_files(repository, model):
        old[path] = path.read_text()
        new[path] = _checked_edit(path, old[path], versions)
    if not new:
        raise ReleaseError(f"{Path(repository) / model} has no config.pbtxt")
    for path, text in new.items():
        if text != old[path]:
            write_atomic(path, text)
    return old


def _checked_edit(path: Path, text: str, versions: list[int]) -> str:
    """``text`` with the new policy, refused unless it parses as a ModelConfig whose policy is exactly it."""
    updated = replace_version_policy(text, versions)
    try:
        parsed = parse_config_text(updated)
    except text_format.ParseError as exc:
        raise ReleaseError(f"{path}: the edited config does not parse ({exc}); nothing was changed") from exc
    if sorted(parsed.version_policy.specific.versions) != sorted(set(versions)):
        raise ReleaseError(f"{path}: version_policy edit did not take; nothing was changed")
    return updated


def restore_configs(old: dict[Path, str]) -> None:
    for path, text in old.items():
        write_atomic(path, text)
