"""The Triton contract: the tensors of the two models (DESIGN.md's external contract, as the configs under
``model_repository/`` declare them), named once. Clients (``serving/client.py``), the Python models
(``serving/triton_models.py``), the local encoder session (``speech/encoder.py``) and the export's graph
(``sensevoice_export.graph``) all read their names here; ``tests/unit/test_triton_contract.py`` checks the shipped
config.pbtxt files against it.

``sensevoice`` (what callers use): AUDIO, LANGUAGE, USE_ITN in; TEXT, and where the config offers them CONFIDENCE
and EMOTION_PROBS (NaN is null: a tensor has no nulls) and WORDS (word times), out. ``sensevoice_encoder`` (the exported ONNX graph):
speech, speech_lengths, language, textnorm in; ctc_logits, encoder_out_lens, token_ids, token_scores and the
optional tag_probs (graphs exported before it existed lack it; every reader must accept that) out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # Triton's data type without its TYPE_ prefix (FP32, INT32, STRING, BOOL)
    dims: tuple[int, ...]  # per batch item; -1: any length


# -- sensevoice: the pipeline model ----------------------------------------------------------------------------------
AUDIO = Tensor("AUDIO", "FP32", (-1,))  # mono samples at 16 kHz in [-1, 1]
LANGUAGE = Tensor("LANGUAGE", "STRING", (1,))  # auto, zh, en, yue, ja, ko, nospeech
USE_ITN = Tensor("USE_ITN", "BOOL", (1,))
TEXT = Tensor("TEXT", "STRING", (1,))  # <|en|><|NEUTRAL|><|Speech|><|withitn|>Hello.
CONFIDENCE = Tensor(
    "CONFIDENCE", "FP32", (3,)
)  # language, emotion, event probability of the tags TEXT carries
EMOTION_PROBS = Tensor("EMOTION_PROBS", "FP32", (8,))  # the emotion distribution, tags.EMOTION_NAMES order
PIPELINE_INPUTS = (AUDIO, LANGUAGE, USE_ITN)
# [[word, start_s, end_s], ...] as JSON, times from the start of AUDIO (speech/alignment.py)
WORDS = Tensor("WORDS", "STRING", (1,))
PIPELINE_OUTPUTS = (TEXT, CONFIDENCE, EMOTION_PROBS, WORDS)
CONFIDENCE_OUTPUTS = (CONFIDENCE.name, EMOTION_PROBS.name)  # optional: asked for where a model offers them
OPTIONAL_OUTPUTS = (*CONFIDENCE_OUTPUTS, WORDS.name)  # what a config written before them lacks

# -- sensevoice_encoder: the exported graph --------------------------------------------------------------------------
SPEECH = Tensor("speech", "FP32", (-1, 560))  # LFR features (7 x 80 fbank), CMVN applied
SPEECH_LENGTHS = Tensor("speech_lengths", "INT32", (1,))
LANGUAGE_ID = Tensor("language", "INT32", (1,))  # speech.languages ids: auto 0, zh 3, en 4, yue 7, ...
TEXTNORM = Tensor("textnorm", "INT32", (1,))  # withitn 14, woitn 15
CTC_LOGITS = Tensor("ctc_logits", "FP32", (-1, -1))
ENCODER_OUT_LENS = Tensor("encoder_out_lens", "INT32", (1,))
TOKEN_IDS = Tensor("token_ids", "INT32", (-1,))
TOKEN_SCORES = Tensor("token_scores", "FP32", (-1,))
TAG_PROBS = Tensor(
    "tag_probs", "FP32", (26,)
)  # optional; tags.TAG_PROBS_WIDTH values, tags.TAG_FAMILIES layout
ENCODER_INPUTS = (SPEECH, SPEECH_LENGTHS, LANGUAGE_ID, TEXTNORM)
ENCODER_GRAPH_OUTPUTS = (CTC_LOGITS, ENCODER_OUT_LENS, TOKEN_IDS, TOKEN_SCORES)  # always; TAG_PROBS optional
# What `sensevoice` asks of the encoder (tag_probs only where its config offers CONFIDENCE).
DECODE_OUTPUTS = (TOKEN_IDS.name, ENCODER_OUT_LENS.name, TAG_PROBS.name)


def names(tensors: tuple[Tensor, ...]) -> list[str]:
    return [t.name for t in tensors]
