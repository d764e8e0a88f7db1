"""The exported encoder graph and its ONNX export.

Inputs and outputs follow the `sensevoice_encoder` contract (``sensevoice_pipeline.triton_contract``). Besides the CTC log-probabilities the
graph emits per-frame argmax ids and their log-probabilities, so that a client can ask for [B, T] ids instead of
[B, T, 25055] floats (Triton only sends the outputs a request names).

``tag_probs`` [B, tags.TAG_PROBS_WIDTH]: the model's probability of every language, emotion and event tag at the
query frame that emits that family. SenseVoiceSmall is trained with a cross-entropy on the first four output frames
against the first four tokens of the rich transcription, ``<|lang|><|EMO|><|Event|><|itn|>`` (funasr
``SenseVoiceSmall.forward``: ``_calc_rich_ce_loss(encoder_out[:, :4, :], text[:, :4])``, and ``encode`` reads the
language from ``text[:, 0]`` and the ITN switch from ``text[:, 3]``), so frame 0 is the language, 1 the emotion,
2 the event. The values are the CTC softmax over the whole vocabulary at that frame (exp of ``ctc_logits``, which
the parity gate already compares with PyTorch), gathered at the tag token ids of the checkpoint's tokenizer: true
model probabilities, and each family's slice sums to at most 1. A tag the tokenizer lacks gets 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from sensevoice_pipeline import triton_contract as contract
from sensevoice_pipeline.speech.decoder import Tokenizer
from sensevoice_pipeline.speech.languages import EVENT_EMOTION_QUERY_IDS, N_QUERY_FRAMES
from sensevoice_pipeline.speech.tags import TAG_FAMILIES

INPUT_NAMES = contract.names(contract.ENCODER_INPUTS)
OUTPUT_NAMES = contract.names(contract.ENCODER_GRAPH_OUTPUTS)
TAG_PROBS = contract.TAG_PROBS.name
# The output frame that emits each tag family (see the module docstring).
TAG_FRAMES = {"language": 0, "emotion": 1, "event": 2}
DYNAMIC_AXES = {
    "speech": {0: "batch", 1: "frames"},
    "speech_lengths": {0: "batch"},
    "language": {0: "batch"},
    "textnorm": {0: "batch"},
    "ctc_logits": {0: "batch", 1: "out_frames"},
    "encoder_out_lens": {0: "batch"},
    "token_ids": {0: "batch", 1: "out_frames"},
    "token_scores": {0: "batch", 1: "out_frames"},
    TAG_PROBS: {0: "batch"},
}
LEGACY_OPSET = 17
DYNAMO_OPSET = 18
EXPORTERS = ("legacy", "dynamo")


def tag_token_ids(tokenizer: str | Path | Tokenizer) -> list[int]:
    """The token id of every tag of ``tags.TAG_FAMILIES`` in the checkpoint's tokenizer, in that order; -1 for a tag
    it lacks. Looked up by piece (``<|ANGRY|>``): ids differ between tokenizers."""
    tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
    return [tokenizer.piece_id(f"<|{name}|>") for _, names in TAG_FAMILIES for name in names]


class EncoderGraph(torch.nn.Module):
    """SenseVoiceSmall from LFR features to CTC outputs, with the language / text-normalisation queries taken as
    per-utterance inputs (funasr's ``inference`` takes one language for the whole batch).

    With ``tag_ids`` (``tag_token_ids(checkpoint tokenizer)``) the graph also returns ``tag_probs``; without, it is
    the graph exported before confidences existed."""

    def __init__(self, model: torch.nn.Module, tag_ids: Sequence[int] | None = None):
        super().__init__()
        self.embed = model.embed
        self.encoder = model.encoder
        self.ctc_lo = model.ctc.ctc_lo
        self.register_buffer(
            "event_emotion_ids", torch.tensor([list(EVENT_EMOTION_QUERY_IDS)], dtype=torch.long)
        )
        self.with_tag_probs = tag_ids is not None
        if self.with_tag_probs:
            self._register_tag_positions(list(tag_ids))

    @property
    def output_names(self) -> list[str]:
        return OUTPUT_NAMES + [TAG_PROBS] if self.with_tag_probs else list(OUTPUT_NAMES)

    def _register_tag_positions(self, tag_ids: list[int]) -> None:
        """Flat indices into ``ctc_logits[:, :3, :]`` (frame x vocabulary) of each tag at its family's frame, and a
        mask that zeroes tags the tokenizer lacks (their index points at a harmless id 0)."""
        frames = [TAG_FRAMES[family] for family, names in TAG_FAMILIES for _ in names]
        if len(tag_ids) != len(frames):
            raise ValueError(f"expected {len(frames)} tag ids (tags.TAG_FAMILIES), got {len(tag_ids)}")
        vocab = self.ctc_lo.out_features
        if any(t >= vocab for t in tag_ids):
            raise ValueError(f"a tag id is outside the model's vocabulary of {vocab}: {tag_ids}")
        flat = [frame * vocab + max(token, 0) for frame, token in zip(frames, tag_ids)]
        self.register_buffer("tag_flat_index", torch.tensor(flat, dtype=torch.long))
        self.register_buffer("tag_present", torch.tensor([float(t >= 0) for t in tag_ids]))
        self.tag_frame_count = max(frames) + 1

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
        outputs = (ctc_logits, encoder_out_lens.int(), token_ids.int(), token_scores)
        if self.with_tag_probs:
            outputs += (self._tag_probs(ctc_logits),)
        return outputs

    def _tag_probs(self, ctc_logits: torch.Tensor) -> torch.Tensor:
        """[B, TAG_PROBS_WIDTH]: exp of the log-softmax at each tag's (frame, token). The query frames are never
        padding (every utterance starts with them), so a padded batch gives each utterance its own values."""
        query_frames = ctc_logits[:, : self.tag_frame_count, :].flatten(1)
        return torch.exp(torch.index_select(query_frames, 1, self.tag_flat_index)) * self.tag_present


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
        output_names=graph.output_names,
        opset_version=opset,
        dynamo=exporter == "dynamo",
    )
    if exporter == "dynamo":
        kwargs["dynamic_shapes"] = _dynamo_shapes()
        kwargs["external_data"] = False
    else:
        kwargs["dynamic_axes"] = {
            k: v for k, v in DYNAMIC_AXES.items() if k in INPUT_NAMES + graph.output_names
        }
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
