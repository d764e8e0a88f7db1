"""Word times (speech/alignment.py) against funasr's own code: its ``ctc_forced_align`` on random emissions, its
``post`` on piece lists, and the argmax-path shortcut checked against the full alignment it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funasr.models.sense_voice.model import SenseVoiceSmall
from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align

from sensevoice_pipeline.speech.alignment import (
    Targets,
    forced_align,
    merge_words,
    needs_emission,
    token_times,
)
from sensevoice_pipeline.speech.decoder import ctc_greedy_ids

VOCAB = 12


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def funasr_alignment(log_probs: np.ndarray, targets: list[int]) -> np.ndarray:
    """funasr's path: the blank set to 0 where it is the argmax, then its ctc_forced_align."""
    lp = torch.from_numpy(log_probs.copy()).float()
    lp[lp.argmax(-1) == 0, 0] = 0
    frames = lp.shape[0]
    out = ctc_forced_align(
        lp.unsqueeze(0),
        torch.tensor(targets).unsqueeze(0).long(),
        torch.tensor([frames]).long(),
        torch.tensor([len(targets)]).long(),
    )
    return out[0].numpy()


def gathered(log_probs: np.ndarray, targets: list[int]) -> np.ndarray:
    return log_probs[:, [0, *targets]]


@pytest.mark.parametrize("seed", range(40))
def test_forced_alignment_is_funasrs(seed):
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(3, 80))
    labels = int(rng.integers(1, max(2, frames // 2)))
    targets = rng.integers(1, VOCAB, labels).tolist()
    if seed % 4 == 0 and labels > 1:  # repeated tokens need a blank between them
        targets[1] = targets[0]
    log_probs = log_softmax(rng.normal(0, 2, (frames, VOCAB)).astype(np.float32))
    ours = forced_align(gathered(log_probs, targets), targets, log_probs.argmax(-1))
    np.testing.assert_array_equal(ours, funasr_alignment(log_probs, targets))


@pytest.mark.parametrize("seed", range(20))
def test_the_argmax_path_is_the_alignment_of_what_it_emitted(seed):
    """The shortcut the server takes: where the targets are the greedy ids, the forced alignment is the argmax path
    itself (so no log-probabilities need to leave the encoder)."""
    rng = np.random.default_rng(100 + seed)
    logits = rng.normal(0, 1, (60, VOCAB))
    logits[rng.random(60) < 0.5, 0] += 4  # blanks between tokens, as CTC models emit
    log_probs = log_softmax(logits).astype(np.float32)
    speech_ids = log_probs.argmax(-1)
    targets = ctc_greedy_ids(speech_ids, speech_ids.size)
    assert not needs_emission(Targets([""] * len(targets), targets), speech_ids)
    np.testing.assert_array_equal(forced_align(gathered(log_probs, targets), targets, speech_ids), speech_ids)
    np.testing.assert_array_equal(funasr_alignment(log_probs, targets), speech_ids)


def test_other_targets_need_the_emission():
    speech_ids = np.array([0, 5, 5, 0, 7, 0])
    assert needs_emission(Targets(["a", "b", "c"], [5, 7, 7]), speech_ids)
    assert not needs_emission(Targets(["a", "b"], [5, 7]), speech_ids)
    assert not needs_emission(Targets([], []), speech_ids)  # nothing to align


def test_token_times_follow_funasrs_frame_rule():
    # frames: blank, a a, blank, b, blank blank -> a spans frames [1, 3), b [4, 5); 60 ms frames, 30 ms earlier
    path = np.array([0, 3, 3, 0, 4, 0, 0])
    assert token_times(path, ["▁a", "b"]) == [("▁a", 0.03, 0.15), ("b", 0.21, 0.27)]
    # clipped at 0 and at the last speech frame
    assert token_times(np.array([3, 0, 4]), ["x", "y"]) == [("x", 0.0, 0.03), ("y", 0.09, 0.15)]


CASES = [
    [
        ("▁I", 0.21, 0.27),
        ("▁want", 0.27, 0.39),
        ("▁a", 0.51, 0.63),
        ("▁re", 0.63, 0.66),
        ("fund", 0.66, 0.69),
    ],
    [("I", 0.2, 0.3), ("▁", 0.3, 0.33), ("▁want", 0.4, 0.5), ("ed", 0.5, 0.55), (".", 0.6, 0.65)],
    [("▁", 0.0, 0.03), ("你", 0.03, 0.09), ("好", 0.09, 0.15), ("ab", 0.15, 0.21), ("c", 0.21, 0.27)],
    [("ありがとう", 0.21, 0.39), ("ございます", 0.57, 0.63), ("。", 0.63, 0.75)],
    [("▁12", 0.1, 0.2), ("34", 0.2, 0.3), ("▁x", 0.3, 0.4), ("Y", 0.4, 0.5), ("!", 0.5, 0.6)],
]


@pytest.mark.parametrize("tokens", CASES)
def test_words_are_funasrs(tokens):
    times, words = SenseVoiceSmall.post(None, [list(t) for t in tokens])
    ours = merge_words(tokens)
    assert [w.word for w in ours] == [w.removeprefix("▁") for w in words]
    assert [[round(w.start_s * 1000), round(w.end_s * 1000)] for w in ours] == times
