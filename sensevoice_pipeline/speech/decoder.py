"""CTC greedy decoding and detokenisation, one utterance at a time.

Each utterance is decoded only up to its own ``encoder_out_lens`` (never the padding that batching adds), repeats
are collapsed within that utterance only, and blanks are dropped; this is what funasr's
``SenseVoiceSmall.inference`` does per batch item.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

BLANK_ID = 0


def ctc_greedy_ids(frame_ids: np.ndarray, length: int, blank_id: int = BLANK_ID) -> list[int]:
    """Collapse repeats and drop blanks in the first ``length`` per-frame argmax ids of one utterance."""
    ids = np.asarray(frame_ids[: int(length)]).reshape(-1)
    if ids.size == 0:
        return []
    keep = np.ones(ids.size, dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    collapsed = ids[keep]
    return collapsed[collapsed != blank_id].astype(np.int64).tolist()


class Tokenizer:
    """The sentencepiece model of a SenseVoice checkpoint."""

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        self._sp = spm.SentencePieceProcessor()
        if not self._sp.Load(str(self.model_file)):  # raises on most bad files; guard the rest
            raise ValueError(f"{model_file}: not a sentencepiece model")

    @property
    def vocab_size(self) -> int:
        return self._sp.GetPieceSize()

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._sp.DecodeIds(list(token_ids))

    def pieces(self, text: str) -> list[str]:
        """``text`` segmented into the tokenizer's pieces (sentencepiece's canonical segmentation)."""
        return self._sp.EncodeAsPieces(text)

    def ids_of_pieces(self, pieces: Sequence[str]) -> list[list[int]]:
        """Each piece encoded on its own, as funasr's ``tokens2ids`` does (a piece may give several ids, or none)."""
        return self._sp.EncodeAsIds(list(pieces))

    def id_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._sp.IdToPiece(int(i)) for i in ids]

    def piece_id(self, piece: str) -> int:
        """The id of a piece such as ``<|ANGRY|>``; -1 when the vocabulary lacks it (tags are looked up by piece,
        never by number, since their ids differ between tokenizers)."""
        pid = self._sp.PieceToId(piece)
        return pid if self._sp.IdToPiece(pid) == piece else -1


class CtcDecoder:
    """Turns the encoder's per-frame argmax ids into rich transcriptions."""

    def __init__(self, tokenizer: Tokenizer, blank_id: int = BLANK_ID):
        self.tokenizer = tokenizer
        self.blank_id = blank_id

    def decode_one(self, frame_ids: np.ndarray, length: int) -> str:
        return self.tokenizer.decode(ctc_greedy_ids(frame_ids, length, self.blank_id))

    def decode_batch(self, frame_ids: np.ndarray, lengths: Sequence[int]) -> list[str]:
        return [self.decode_one(frame_ids[i], lengths[i]) for i in range(len(lengths))]
