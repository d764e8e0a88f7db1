"""releases/policy.py: finding a top-level field in a config's text, and version_policy edits on a repository made
from the project's model_repository/ templates (the configs Triton really gets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensevoice_pipeline.releases.errors import ReleaseError
from sensevoice_pipeline.releases.policy import (
    config_files,
    parse_config,
    pipeline_versions,
    policy_versions,
    restore_configs,
    set_version_policy,
    top_level_field_span,
    version_policy_text,
)
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL, ModelRepository


@pytest.fixture
def repo(tmp_path) -> Path:
    """The templates' configs and model.py shells, and empty version folders 1-3 of both models."""
    repository = ModelRepository(tmp_path / "model_repository")
    repository.copy_template()
    for model in (PIPELINE_MODEL, ENCODER_MODEL):
        for version in (1, 2, 3):
            repository.version_dir(model, version).mkdir()
    return repository.path


def field(text: str, name: str) -> str | None:
    span = top_level_field_span(text, name)
    return None if span is None else text[span[0] : span[1]]


CONFIG = """# name: "in a comment"
input [
  { name: "AUDIO"  # a nested field of the same name comes first
    dims: [ -1 ] }
]
name: "m"  # the top-level one
parameters { key: "k" value: { string_value: "max_batch_size: 9 }" } }
max_batch_size : 4
version_policy <
  latest < num_versions: 2 >
>
dynamic_batching { }
"""


def test_a_top_level_field_is_found_past_comments_strings_and_nested_fields_of_its_name():
    assert field(CONFIG, "name") == 'name: "m"'
    assert field(CONFIG, "max_batch_size") == "max_batch_size : 4"
    assert field(CONFIG, "version_policy") == "version_policy <\n  latest < num_versions: 2 >\n>"
    assert field(CONFIG, "dynamic_batching") == "dynamic_batching { }"
    assert field(CONFIG, "parameters").endswith('string_value: "max_batch_size: 9 }" } }')
    assert field(CONFIG, "dims") is None and field(CONFIG, "output") is None


def test_the_offsets_hold_on_any_line_so_an_edit_replaces_exactly_the_field():
    text = 'name: "m"\n\n\n  version_policy: { all: { } }   # all of them\nmax_batch_size: 1\n'
    start, end = top_level_field_span(text, "version_policy")
    assert (start, end) == (14, 42)
    assert text[:start] + "X" + text[end:] == 'name: "m"\n\n\n  X   # all of them\nmax_batch_size: 1\n'


def test_the_policy_text_lists_each_version_once_in_order():
    assert version_policy_text([3, 1, 3]) == "version_policy: { specific: { versions: [ 1, 3 ] } }"
    assert pipeline_versions(5, 4) == [4, 5]
    assert pipeline_versions(5, 6) == [5]  # a higher standby would take the unpinned requests
    assert pipeline_versions(5, None) == [5]


def test_the_policy_loads_only_versions_the_pipeline_model_has(repo):
    assert [p.relative_to(repo).as_posix() for p in config_files(repo, ENCODER_MODEL)] == [
        "sensevoice_encoder/config.pbtxt",
        "sensevoice_encoder/configs/local.pbtxt",
        "sensevoice_encoder/configs/tensorrt.pbtxt",
    ]
    assert policy_versions(repo, PIPELINE_MODEL) == [3]  # the templates' latest: 1
    (repo / ENCODER_MODEL / "4").mkdir()  # an encoder folder without its pipeline version
    assert policy_versions(repo, PIPELINE_MODEL) == [3]
    set_version_policy(repo, PIPELINE_MODEL, [1, 3, 4])
    assert policy_versions(repo, PIPELINE_MODEL) == [1, 3]
    assert policy_versions(repo, "no_such_model") == []


def test_every_config_of_the_model_gets_the_policy_and_restore_puts_each_text_back(repo):
    before = {p: p.read_text() for p in config_files(repo, ENCODER_MODEL)}
    old = set_version_policy(repo, ENCODER_MODEL, [2, 1])
    assert old == before
    for path in before:
        assert list(parse_config(path).version_policy.specific.versions) == [1, 2], path
    pipeline = repo / PIPELINE_MODEL / "config.pbtxt"
    assert "latest" in str(parse_config(pipeline).version_policy)  # the other model is left alone
    restore_configs(old)
    assert {p: p.read_text() for p in before} == before


def test_a_policy_that_is_already_there_is_not_rewritten(repo):
    path = repo / PIPELINE_MODEL / "config.pbtxt"
    set_version_policy(repo, PIPELINE_MODEL, [2])
    inode = path.stat().st_ino
    set_version_policy(repo, PIPELINE_MODEL, [2])
    assert path.stat().st_ino == inode  # an edit is a rename over the file: none happened


def test_one_config_that_cannot_be_edited_leaves_every_config_as_it_was(repo):
    broken = repo / PIPELINE_MODEL / "configs" / "zz_broken.pbtxt"
    broken.write_text(
        'name: "sensevoice"\nversion_policy {\n  latest { num_versions: 1 }\n'
    )  # no closing brace
    before = {p: p.read_text() for p in config_files(repo, PIPELINE_MODEL)}
    assert list(before)[0] == repo / PIPELINE_MODEL / "config.pbtxt"  # edited before the broken one is read
    with pytest.raises(ReleaseError, match="version_policy field of a config has no complete value"):
        set_version_policy(repo, PIPELINE_MODEL, [1, 2])
    assert {p: p.read_text() for p in before} == before


def test_an_edit_that_would_not_parse_is_refused_naming_the_file(repo):
    odd = repo / PIPELINE_MODEL / "configs" / "odd.pbtxt"
    odd.write_text('name: "sensevoice"\nno_such_field: 1\n')  # not a ModelConfig, with or without a policy
    before = (repo / PIPELINE_MODEL / "config.pbtxt").read_text()
    with pytest.raises(ReleaseError, match=f"{odd}: the edited config does not parse .*nothing was changed"):
        set_version_policy(repo, PIPELINE_MODEL, [1])
    assert (repo / PIPELINE_MODEL / "config.pbtxt").read_text() == before


def test_a_model_without_configs_or_versions_is_refused(repo):
    with pytest.raises(ReleaseError, match="empty version policy"):
        set_version_policy(repo, PIPELINE_MODEL, [])
    with pytest.raises(ReleaseError, match="has no config.pbtxt"):
        set_version_policy(repo, "no_such_model", [1])
