"""serving/triton_models.py's local CPU shape (issue 18): how many encoder instances a config asks for, and the
share of the cores each takes. The shape on a real local Triton: tests/integration/serving/test_local_layout.py."""

from __future__ import annotations

from sensevoice_pipeline.serving.triton_models import instance_count, instance_threads

TWO_INSTANCES = {"instance_group": [{"count": 2, "kind": "KIND_CPU"}]}


def test_instance_count_sums_the_configs_instance_groups():
    assert instance_count(TWO_INSTANCES) == 2
    assert (
        instance_count('{"instance_group": [{"count": 2}, {"count": 3}]}') == 5
    )  # JSON, as Triton passes it
    assert instance_count({"instance_group": [{"kind": "KIND_CPU"}]}) == 1  # count left to Triton's default
    assert instance_count({}) == 1


def test_each_instance_takes_its_share_of_the_cores_unless_svp_ort_threads_says(monkeypatch):
    monkeypatch.delenv("SVP_ORT_THREADS", raising=False)
    assert instance_threads(TWO_INSTANCES, cores=2) == 1
    assert instance_threads(TWO_INSTANCES, cores=16) == 8
    assert instance_threads(TWO_INSTANCES, cores=1) == 1  # never 0 (onnxruntime would take every core)
    assert instance_threads({}, cores=4) == 4
    monkeypatch.setenv("SVP_ORT_THREADS", "3")
    assert instance_threads(TWO_INSTANCES, cores=16) == 3
