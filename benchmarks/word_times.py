"""Word times (issue 31, item 3): what the WORDS output costs per request, beside the encoder call it follows.

Two models, each through the same `Transcriber.answer` the `sensevoice` Triton model runs (the encoder in
onnxruntime here, one utterance per call as the local config sends them):

- the trained fixture model: its texts re-tokenise into the very tokens it emitted, so every word time comes from
  the argmax path the decoder already has (no log-probabilities at all): the common case of a trained model;
- a micro checkpoint with random weights and the fixture tokenizer: its texts re-tokenise into other tokens, so each
  needs funasr's forced alignment, on the blank's and the targets' log-probabilities. Locally those come from a
  second encoder call asking for ``ctc_logits``; the GPU config never lists them and keeps the emitted tokens' times
  instead (speech/alignment.py).

Per utterance: the encoder call, the word-time step without logits (argmax path, and for a re-tokenising text the
emitted tokens' times, as on the GPU), and with logits (the local config: forced alignment where needed); medians
of ``--rounds`` rounds, ratios to the encoder call measured in the same round.

    python -m benchmarks.word_times [--rounds 5] [--workdir var/bench]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from .common import DEFAULT_WORKDIR, load_average, log, write_json

SECONDS = (2, 8, 30)  # utterance lengths: a short answer, a sentence, the longest VAD segment


def _utterances(seconds: float) -> list:
    from sensevoice_pipeline.serving.transcriber import Utterance
    from sensevoice_pipeline.speech.audio import load_mono_16k
    from tests.support.paths import EXAMPLE_AUDIO

    audio = np.concatenate([load_mono_16k(p) for p in EXAMPLE_AUDIO])
    return [Utterance(audio[: int(seconds * 16000)].astype(np.float32), "auto", True)]


def _repository(workdir: Path, name: str) -> Path:
    """The model ``name`` exported (fp32) under ``workdir``, once."""
    from sensevoice_export.micro import build_checkpoint
    from sensevoice_export.pipeline import run_export
    from tests.support.paths import FIXTURE_MODEL_DIR

    repo = workdir / "word-times" / name / "repo"
    if (repo / "sensevoice").is_dir():
        return repo
    if name == "fixture":
        checkpoint = FIXTURE_MODEL_DIR
    else:
        tokenizer = FIXTURE_MODEL_DIR / "fixture_spectok.bpe.model"
        checkpoint = build_checkpoint(
            workdir / "word-times" / name / "checkpoint", seed=3, tokenizer=tokenizer
        )
    run_export(str(checkpoint), repo, "fp32", "legacy", progress=lambda *_: None)
    return repo


def _timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def measure(repo: Path, seconds: float, rounds: int) -> dict:
    """Medians over ``rounds`` of the encoder call and the word-time step with and without logits."""
    from sensevoice_pipeline.serving.transcriber import LocalTranscriber

    local = LocalTranscriber(repo, threads=1)
    transcriber = local.transcriber
    batch = _utterances(seconds)
    features = transcriber.features(batch)
    encode_s, argmax_s, aligned_s = [], [], []
    slow = 0
    for _ in range(rounds):
        t, (token_ids, lens, _) = _timed(local._encode, *features)
        lens = np.asarray(lens).reshape(-1)
        texts = transcriber.decoder.decode_batch(token_ids, lens)
        encode_s.append(t)
        t, plain = _timed(transcriber._word_times, features, texts, token_ids, lens, None)
        argmax_s.append(t)
        t, _ = _timed(transcriber._word_times, features, texts, token_ids, lens, local._logits)
        aligned_s.append(t)
        slow = sum(not aligned for _, aligned in plain)
    encode, argmax, aligned = (statistics.median(v) for v in (encode_s, argmax_s, aligned_s))
    return {
        "seconds": seconds,
        "frames": int(lens[0]),
        "words": len(plain[0][0]),
        "needs_alignment": slow,
        "encoder_ms": round(encode * 1000, 2),
        "argmax_path_ms": round(argmax * 1000, 3),
        "with_logits_ms": round(aligned * 1000, 2),
        "argmax_path_share": round(argmax / encode, 4),
        "with_logits_share": round(aligned / encode, 3),
    }


def render(result: dict) -> str:
    lines = [
        f"Word times: medians of {result['rounds']} rounds, 1 onnxruntime thread, share = / encoder call"
    ]
    header = (
        "model",
        "audio s",
        "frames",
        "words",
        "realign",
        "encoder ms",
        "argmax ms",
        "share",
        "logits ms",
        "share",
    )
    lines.append("  " + " | ".join(header))
    for model, rows in result["models"].items():
        for r in rows:
            cells = (
                model,
                r["seconds"],
                r["frames"],
                r["words"],
                r["needs_alignment"],
                r["encoder_ms"],
                r["argmax_path_ms"],
                r["argmax_path_share"],
                r["with_logits_ms"],
                r["with_logits_share"],
            )
            lines.append("  " + " | ".join(str(c) for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    result = {"rounds": args.rounds, "load_before": load_average(), "models": {}}
    for name in ("fixture", "retokenising-micro"):
        repo = _repository(args.workdir, name)
        log(f"word times: {name}")
        result["models"][name] = [measure(repo, s, args.rounds) for s in SECONDS]
    result["load_after"] = load_average()
    write_json(args.workdir / "word_times.json", result)
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
