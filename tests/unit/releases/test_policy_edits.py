"""releases/policy.py's version_policy edits: they parse as Triton model configs, change nothing but the policy, and
keep every comment outside the field."""

from __future__ import annotations

import shutil

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL
from tests.support.paths import ROOT as PROJECT_ROOT


def test_version_policy_edits_parse_as_model_configs_and_keep_the_rest(tmp_path):
    repo = tmp_path / "model_repository"
    shutil.copytree(PROJECT_ROOT / "model_repository", repo)
    before = {
        p: p.read_text() for m in (PIPELINE_MODEL, ENCODER_MODEL) for p in releases.config_files(repo, m)
    }
    assert (
        len(before) == 5
    )  # config.pbtxt + configs/local.pbtxt for both models, + configs/tensorrt.pbtxt (encoder)

    for model in (PIPELINE_MODEL, ENCODER_MODEL):
        old = releases.set_version_policy(repo, model, [3, 2])
        assert set(old) == set(releases.config_files(repo, model))
    for path, text in before.items():
        after = path.read_text()
        new = text_format.Parse(after, model_config_pb2.ModelConfig())
        assert list(new.version_policy.specific.versions) == [2, 3], path
        old = text_format.Parse(text, model_config_pb2.ModelConfig())
        new.ClearField("version_policy")
        old.ClearField("version_policy")
        assert new == old, f"{path}: more than version_policy changed"
        # comments survive; exactly one policy line
        assert [line for line in text.splitlines() if "#" in line] == [
            line for line in after.splitlines() if "#" in line
        ]
        assert after.count("version_policy") == 1

    # a multi-line block with a nested comment is replaced as a whole; a config without one gets one appended
    text = 'name: "m"\nversion_policy {\n  latest { num_versions: 2 }  # keep two }\n}\nmax_batch_size: 4\n'
    out = releases.replace_version_policy(text, [7])
    parsed = text_format.Parse(out, model_config_pb2.ModelConfig())
    assert list(parsed.version_policy.specific.versions) == [7] and parsed.max_batch_size == 4
    out = releases.replace_version_policy('name: "m"\n', [1, 2])
    assert list(text_format.Parse(out, model_config_pb2.ModelConfig()).version_policy.specific.versions) == [
        1,
        2,
    ]
    with pytest.raises(releases.ReleaseError, match="empty version policy"):
        releases.set_version_policy(repo, PIPELINE_MODEL, [])


POLICY_TEXT = """# version_policy { latest { num_versions: 1 } }   <- a comment, not the field
name: "sensevoice"  # a comment with { braces
parameters { key: "note" value: { string_value: "version_policy: { all: {} } # a string, not a comment" } }
version_policy {
  latest { num_versions: 2 }  # keep two }
}
max_batch_size: 4  # after the policy
# the last line
"""


def test_a_version_policy_edit_keeps_every_comment_outside_the_field_and_parses_to_the_policy():
    out = releases.replace_version_policy(POLICY_TEXT, [3, 1])
    lines = POLICY_TEXT.splitlines()
    assert (
        out.splitlines() == lines[:3] + ["version_policy: { specific: { versions: [ 1, 3 ] } }"] + lines[6:]
    )
    parsed = text_format.Parse(out, model_config_pb2.ModelConfig())
    assert list(parsed.version_policy.specific.versions) == [1, 3] and parsed.max_batch_size == 4
    assert parsed.parameters["note"].string_value == "version_policy: { all: {} } # a string, not a comment"
    # an edit of an edit changes the policy line only
    again = releases.replace_version_policy(out, [5])
    assert again.splitlines() == lines[:3] + ["version_policy: { specific: { versions: [ 5 ] } }"] + lines[6:]
    with pytest.raises(releases.ReleaseError, match="no complete value"):
        releases.replace_version_policy('name: "m"\nversion_policy {\n  latest { num_versions: 2 }\n', [1])
