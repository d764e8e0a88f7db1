"""A version switch has no N→N window (issue 15, item 5): `sensevoice` N calls `sensevoice_encoder` N by BLS, and a
load that removes version N of `sensevoice` returns while N is still UNLOADING with the requests it took (seen
here: Triton's repository index). Promote and roll back on a real local Triton under steady concurrent traffic
sent with tritonclient; every change of the encoder set must come when no `sensevoice` version outside it is live
on the server, and no request may fail.

With the old order (the encoder set shrunk as soon as the `sensevoice` load returned), the rollback's encoder load
was asked for while `sensevoice` 2 was still UNLOADING, and this test fails on that check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.repository import ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.server import LocalTriton
from tests.support.traffic import Traffic
from tests.support.triton import live_versions, repository_with_two_versions, settled_versions

pytestmark = pytest.mark.triton


class EncoderChanges:
    """Every encoder load the release operations ask of a server, with what the server's index showed live of
    `sensevoice` at that moment and the encoder versions the configs then named. A spy: the real load runs."""

    def __init__(self, repo: Path, monkeypatch: pytest.MonkeyPatch):
        self.repo, self.seen = repo, []
        real_load = releases.TritonControl.load

        def load(control, model, config=None, files=None):
            if model == ENCODER_MODEL:
                self.seen.append(
                    (
                        control.url,
                        live_versions(control.url, PIPELINE_MODEL),
                        set(releases.policy_versions(self.repo, ENCODER_MODEL)),
                    )
                )
            return real_load(control, model, config=config, files=files)

        monkeypatch.setattr(releases.TritonControl, "load", load)

    def too_early(self) -> list[str]:
        """The changes asked for while a `sensevoice` version whose encoder they drop was still live."""
        return [
            f"{url}: encoder set {sorted(encoders)} while sensevoice {sorted(live)} live"
            for url, live, encoders in self.seen
            if not live <= encoders
        ]


@pytest.fixture()
def switch_repo(exported_repository, tmp_path) -> Path:
    return repository_with_two_versions(exported_repository, tmp_path / "model_repository")


def test_promote_and_rollback_keep_each_encoder_until_its_pipeline_version_is_gone(switch_repo, monkeypatch):
    repo = switch_repo
    with LocalTriton(repo) as server:
        url = server.grpc_url
        changes = EncoderChanges(repo, monkeypatch)
        with Traffic([url]) as traffic:
            promoted = releases.promote(repo, 2, url)
            t_promoted = time.monotonic()
            traffic.wait_for(6)
            rolled = releases.rollback(repo, url)  # 2 → 1: version 2 of both models leaves
            t_rolled = time.monotonic()
            traffic.wait_for(6)
        assert settled_versions(url, ENCODER_MODEL) == {1} and settled_versions(url, PIPELINE_MODEL) == {1}

    assert promoted["serving"] == 2 and rolled["serving"] == 1 and rolled["encoder_versions"] == [1]
    assert any(not encoders >= {2} for _, _, encoders in changes.seen), "the rollback never dropped encoder 2"
    assert changes.too_early() == []
    failures = traffic.failures()
    assert not failures, f"{len(failures)} of {len(traffic.answers)} requests failed: {failures[:3]}"
    assert traffic.versions_since(t_promoted) >= {"2"} and traffic.versions_since(t_rolled) == {"1"}
    print(f"\n{len(traffic.answers)} requests, 0 failed; encoder changes: {changes.seen}")
