"""The exported encoder graph and its ONNX export.

Inputs and outputs follow the `sensevoice_encoder` contract of DESIGN.md. Besides the CTC log-probabilities the
graph emits per-frame argmax ids and their log-probabilities, so that a client can ask for [B, T] ids instead of
[B, T, 25055] floats (Triton only sends the outputs a request names).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sensevoice_pipeline.speech.languages import EVENT_EMOTION_QUERY_IDS, N_QUERY_FRAMES

INPUT_NAMES = ["speech", "speech_lengths", "language", "textnorm"]
OUTPUT_NAMES = ["ctc_logits", "encoder_out_lens", "token_ids", "token_scores"]
DYNAMIC_AXES = {
    "speech": {0: "batch", 1: "frames"},
    "speech_lengths": {0: "batch"},
    "language": {0: "batch"},
    "textnorm": {0: "batch"},
    "ctc_logits": {0: "batch", 1: "out_frames"},
    "encoder_out_lens": {0: "batch"},
    "token_ids": {0: "batch", 1: "out_frames"},
    "token_scores": {0: "batch", 1: "out_frames"},
}
LEGACY_OPSET = 17
DYNAMO_OPSET = 18
EXPORTERS = ("legacy", "dynamo")


class EncoderGraph(torch.nn.Module):
    """SenseVoiceSmall from LFR features to CTC outputs, with the language / text-normalisation queries taken as
    per-utterance inputs (funasr's ``inference`` takes one language for the whole batch)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.embed = model.embed
        self.encoder = model.encoder
        self.ctc_lo = model.ctc.ctc_lo
        self.register_buffer("event_emotion_ids", torch.tensor([list(EVENT_EMOTION_QUERY_IDS)], dtype=torch.long))

    def forward(self, speech, speech_lengths, language, textnorm):
        batch = speech.shape[0]
        language_query = self.embed(language.long()).unsqueeze(1)
        textnorm_query = self.embed(textnorm.long()).unsqueeze(1)
        event_emotion_query = self.embed(self.event_emotion_ids).expand(batch, -1, -1)
        # Same order as funasr: language, event, emotion, textnorm, then the speech frames.
        x = torch.cat((language_query, event_emotion_query, textnorm_query, speech), dim=1)
        lengths = speech_lengths.long() + N_QUERY_FRAMES
        encoder_out, encoder_out_lens = self.encoder(x, lengths)
        if isinstance(encoder_out, tuple):
            encoder_out = encoder_out[0]
        ctc_logits = torch.log_softmax(self.ctc_lo(encoder_out), dim=-1)
        # argmax + gather rather than max(): ReduceMax feeding a graph output breaks the fp16 converter's I/O casts.
        token_ids = ctc_logits.argmax(dim=-1)
        token_scores = torch.gather(ctc_logits, -1, token_ids.unsqueeze(-1)).squeeze(-1)
        return ctc_logits, encoder_out_lens.int(), token_ids.int(), token_scores


def dummy_inputs(feature_dim: int = 560) -> tuple[torch.Tensor, ...]:
    """A padded batch of two so that the exporter sees a real batch and a real mask."""
    generator = torch.Generator().manual_seed(0)
    speech = torch.randn(2, 30, feature_dim, generator=generator)
    return (
        speech,
        torch.tensor([30, 17], dtype=torch.int32),
        torch.tensor([0, 4], dtype=torch.int32),
        torch.tensor([14, 15], dtype=torch.int32),
    )


def export_onnx(graph: EncoderGraph, path: Path, exporter: str = "legacy", feature_dim: int = 560) -> int:
    """Write ``graph`` to ``path``; returns the opset used."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    opset = LEGACY_OPSET if exporter == "legacy" else DYNAMO_OPSET
    kwargs = dict(
        input_names=INPUT_NAMES,
        output_names=OUTPUT_NAMES,
        opset_version=opset,
        dynamo=exporter == "dynamo",
    )
    if exporter == "dynamo":
        kwargs["dynamic_shapes"] = _dynamo_shapes()
        kwargs["external_data"] = False
    else:
        kwargs["dynamic_axes"] = DYNAMIC_AXES
        kwargs["do_constant_folding"] = True
    graph.eval()
    with torch.no_grad():
        torch.onnx.export(graph, dummy_inputs(feature_dim), str(path), **kwargs)
    return opset


def _dynamo_shapes():
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=2, max=100000)
    return {
        "speech": {0: batch, 1: frames},
        "speech_lengths": {0: batch},
        "language": {0: batch},
        "textnorm": {0: batch},
    }
