"""Encoder batches of similar length (transcriber.length_groups): padding costs real compute, so a batch never
mixes a short utterance with a much longer one. That texts still come back in the order given, on the exported
model: tests/integration/serving/test_local_transcriber.py."""

import numpy as np

from sensevoice_pipeline.serving.transcriber import MAX_PADDING, length_groups


def test_every_index_once_and_padding_bounded():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(0, 30 * 16000, size=int(rng.integers(1, 40))).tolist()
        groups = length_groups(lengths)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        for g in groups:
            sizes = [lengths[i] for i in g]
            assert sizes == sorted(sizes)
            assert max(sizes) * len(sizes) <= (1 + MAX_PADDING) * sum(sizes) or len(g) == 1


def test_similar_lengths_share_a_batch_and_far_apart_ones_do_not():
    assert length_groups([16000, 16500, 17000, 16200]) == [[0, 3, 1, 2]]
    assert length_groups([480000, 48000]) == [[1], [0]]
    assert length_groups([]) == []
