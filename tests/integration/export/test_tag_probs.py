"""Tag confidences in the exported graph (issue 18, item 3): the encoder's tag probabilities are funasr's own
softmax at the tag frames, and a padded batch gives each utterance its own. The exported micro model, in-process.
Through Triton and into the lake: tests/integration/serving/test_confidences.py."""

from __future__ import annotations

import numpy as np
import pytest

from sensevoice_pipeline.serving.repository import ENCODER_FILE, ENCODER_MODEL, PIPELINE_MODEL
from sensevoice_pipeline.serving.transcriber import Transcriber, Utterance
from sensevoice_pipeline.speech.decoder import Tokenizer
from sensevoice_pipeline.speech.encoder import TAG_PROBS, EncoderSession
from sensevoice_pipeline.speech.tags import TAG_FAMILIES, TAG_PROBS_WIDTH
from tests.support.audio import synthetic_clip

pytestmark = pytest.mark.export


def test_tag_probs_are_funasrs_own_softmax_at_the_tag_frames(
    micro_checkpoint, funasr_model, exported_repository
):
    """funasr's SenseVoiceSmall.inference on a clip, its CTC projection caught with a forward hook: the softmax over
    the whole vocabulary at output frames 0, 1, 2, taken at the tokenizer's language / emotion / event tag ids, is
    what the exported graph returns as tag_probs for the same audio."""
    import torch

    from tests.support.triton import funasr_text

    audio = synthetic_clip(2.3, seed=5)
    caught = []
    hook = funasr_model.model.ctc.ctc_lo.register_forward_hook(
        lambda _m, _i, out: caught.append(out.detach())
    )
    try:
        funasr_text(funasr_model, audio, "en", True)
    finally:
        hook.remove()
    (projection,) = caught
    funasr_probs = torch.softmax(projection[0, :3].double(), dim=-1).numpy()
    tokenizer = Tokenizer(next(micro_checkpoint.glob("*.bpe.model")))
    frame_of = {"language": 0, "emotion": 1, "event": 2}
    want = [
        funasr_probs[frame_of[family], tokenizer.piece_id(f"<|{name}|>")]
        if tokenizer.piece_id(f"<|{name}|>") >= 0
        else 0.0
        for family, names in TAG_FAMILIES
        for name in names
    ]

    transcriber = Transcriber(exported_repository / PIPELINE_MODEL / "1")
    session = EncoderSession(exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE)
    assert TAG_PROBS in session.output_names
    got = session.run(*transcriber.features([Utterance(audio, "en", True)]), outputs=[TAG_PROBS])[TAG_PROBS]
    assert got.shape == (1, TAG_PROBS_WIDTH)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-7)
    assert max(want) > 0  # the micro tokenizer has the tags: the comparison is not between zeros


def test_a_padded_batch_gives_each_utterance_its_own_tag_probs(exported_repository):
    transcriber = Transcriber(exported_repository / PIPELINE_MODEL / "1")
    session = EncoderSession(exported_repository / ENCODER_MODEL / "1" / ENCODER_FILE)
    utterances = [
        Utterance(synthetic_clip(s, seed=i), lang, itn)
        for i, (s, lang, itn) in enumerate([(0.6, "auto", True), (3.1, "zh", False), (1.7, "ko", True)])
    ]
    batch = session.run(*transcriber.features(utterances), outputs=[TAG_PROBS])[TAG_PROBS]
    for i, utterance in enumerate(utterances):
        alone = session.run(*transcriber.features([utterance]), outputs=[TAG_PROBS])[TAG_PROBS]
        np.testing.assert_allclose(batch[i], alone[0], rtol=1e-4, atol=1e-8)
