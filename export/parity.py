"""Parity of an exported graph against PyTorch.

The reference runs every utterance alone (no padding) through the PyTorch graph; the candidate runs them as one
padded batch through onnxruntime. Only each utterance's valid output frames are compared, so the check also proves
that padding never leaks into an utterance's result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Frames (at 60 ms per LFR frame) of the utterances in the check batch: short, long and in between.
CHECK_LENGTHS = (17, 93, 250, 64)
CHECK_LANGUAGES = (0, 4, 7, 3)
CHECK_TEXTNORMS = (14, 15, 14, 15)


@dataclass(frozen=True)
class Thresholds:
    max_abs: float | None  # largest |onnx - torch| of the CTC log-probabilities
    min_cosine: float  # cosine of mean-centred log-probabilities, worst frame
    min_argmax_agreement: float  # share of valid frames whose best token agrees


THRESHOLDS = {
    "fp32": Thresholds(max_abs=1e-4, min_cosine=0.99999, min_argmax_agreement=1.0),
    "fp16": Thresholds(max_abs=None, min_cosine=0.999, min_argmax_agreement=0.98),
    "int8": Thresholds(max_abs=None, min_cosine=0.95, min_argmax_agreement=0.90),
}


@dataclass(frozen=True)
class ParityReport:
    precision: str
    frames: int
    max_abs: float
    min_cosine: float
    mean_cosine: float
    argmax_agreement: float
    encoder_out_lens_equal: bool
    thresholds: Thresholds
    passed: bool
    failures: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def check_batch(feature_dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.array(CHECK_LENGTHS, dtype=np.int32)
    speech = np.zeros((len(lengths), lengths.max(), feature_dim), dtype=np.float32)
    for i, n in enumerate(lengths):
        speech[i, :n] = rng.standard_normal((n, feature_dim), dtype=np.float32)
    return speech, lengths, np.array(CHECK_LANGUAGES, np.int32), np.array(CHECK_TEXTNORMS, np.int32)


def torch_reference(
    graph, speech, lengths, languages, textnorms, device: str = "cpu"
) -> list[tuple[np.ndarray, int]]:
    """Every utterance alone and unpadded through the PyTorch graph on ``device``, back on the host as float32."""
    import torch

    refs = []
    with torch.no_grad():
        for i, n in enumerate(lengths):
            out = graph(
                *(
                    torch.from_numpy(np.ascontiguousarray(a)).to(device)
                    for a in (
                        speech[i : i + 1, :n],
                        np.array([n], np.int32),
                        languages[i : i + 1],
                        textnorms[i : i + 1],
                    )
                )
            )
            refs.append((out[0][0].float().cpu().numpy(), int(out[1][0])))
    return refs


def thresholds_for(
    precision: str, min_cosine: float | None = None, min_argmax_agreement: float | None = None
) -> Thresholds:
    """The precision's default gate, with the floors a platform team chose instead (recorded in export_meta.json).
    Random-weight checkpoints need this for int8: their logits are nearly flat, so rounding flips the argmax."""
    base = THRESHOLDS[precision]
    for name, value in (("min_cosine", min_cosine), ("min_argmax_agreement", min_argmax_agreement)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return Thresholds(
        max_abs=base.max_abs,
        min_cosine=base.min_cosine if min_cosine is None else min_cosine,
        min_argmax_agreement=base.min_argmax_agreement
        if min_argmax_agreement is None
        else min_argmax_agreement,
    )


def compare(
    graph, onnx_path: Path, precision: str, feature_dim: int, limits: Thresholds | None = None
) -> ParityReport:
    from sensevoice_pipeline.speech.encoder import EncoderSession

    batch = check_batch(feature_dim)
    refs = torch_reference(graph, *batch)
    result = EncoderSession(onnx_path).run(*batch, outputs=("ctc_logits", "encoder_out_lens"))
    return judge(refs, result["ctc_logits"], result["encoder_out_lens"], precision, limits)


def judge(
    refs: list[tuple[np.ndarray, int]],
    logits: np.ndarray,
    lens: np.ndarray,
    precision: str,
    limits: Thresholds | None = None,
) -> ParityReport:
    """The gate itself: the candidate's padded batch (``logits`` [B, T, V], ``lens`` [B]) against the reference's
    per-utterance ``(log-probabilities [n, V], n)``, under ``limits`` (default: the precision's thresholds)."""
    lens_equal = all(int(lens[i]) == n for i, (_, n) in enumerate(refs))
    max_abs, cosines, agree, frames = 0.0, [], 0, 0
    for i, (ref, n) in enumerate(refs):
        got = logits[i, :n].astype(np.float64)
        want = ref[:n].astype(np.float64)
        max_abs = max(max_abs, float(np.abs(got - want).max()))
        cosines.append(_rowwise_cosine(got - got.mean(1, keepdims=True), want - want.mean(1, keepdims=True)))
        agree += int((got.argmax(1) == want.argmax(1)).sum())
        frames += n
    cos = np.concatenate(cosines)
    limits = limits or THRESHOLDS[precision]
    failures = []
    if not lens_equal:
        failures.append("encoder_out_lens differ from PyTorch")
    if limits.max_abs is not None and max_abs >= limits.max_abs:
        failures.append(f"max abs difference {max_abs:.3g} >= {limits.max_abs:g}")
    if cos.min() < limits.min_cosine:
        failures.append(f"worst-frame cosine {cos.min():.6f} < {limits.min_cosine}")
    if agree / frames < limits.min_argmax_agreement:
        failures.append(f"argmax agreement {agree / frames:.4f} < {limits.min_argmax_agreement}")
    return ParityReport(
        precision=precision,
        frames=frames,
        max_abs=max_abs,
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        argmax_agreement=agree / frames,
        encoder_out_lens_equal=lens_equal,
        thresholds=limits,
        passed=not failures,
        failures=tuple(failures),
    )


def _rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(denom, 1e-30)
