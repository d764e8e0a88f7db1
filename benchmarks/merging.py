"""Segment merging (issue 18): what joining adjacent VAD segments of a channel up to N seconds does to the request
count, the encoder's work, the wall time and (on the trained fixture model) the answers.

Two recordings, each through :class:`RecordingTranscriber` against a real local Triton, for every merge length:

- **sentences**: a ~5-minute call of short sentences (the silero-VAD speech runs of ``tests/assets/audio/*.mp3``,
  1-4 s each, with 0.3-1.2 s pauses and a -50 dBFS noise floor), segmented by silero once; each merge length then
  joins those segments (``vad.merge_adjacent``), so the VAD's cost is not in the comparison;
- **fixture**: the trained fixture model's speech clips (``export/fixture_model/clips``, 0.85-1.75 s of tone
  patterns) one after another with 0.5 s of silence, segmented at the clips' own bounds (silero does not hear tones
  as speech). The model was trained on single clips only, so the answers to joined clips say how a model that never
  saw a joined segment reacts, not what the real SenseVoiceSmall does.

Per merge length: requests sent, audio seconds sent, audio seconds the encoder computes when each dynamic batch
of ``concurrency`` consecutive requests is padded within the server's length groups (an estimate: Triton does not
report padded shapes), the encoder's own compute time and executions from Triton's inference statistics
(measured, padding included), and the wall time of ``transcribe_channels``. The lengths run in a rotated order in
each round, and the table gives medians and the median of each round's ratio to merging off, so load from other
processes hits every length alike.

    .venv/bin/python -m benchmarks.merging [--models fixture full-int8] [--merge 0 5 10 15 25] [--rounds 3]

``full-int8`` is the real 234 M architecture with random weights (built by ``make bench``, cached under
``var/bench/models/full``): the cost is the real model's, its texts mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import DEFAULT_WORKDIR, FIXTURE_MODEL_DIR, Paths, log, triton_threads_each

SAMPLE_RATE = 16000
MAX_SEGMENT_S = 30.0
SPEECH_DIR = Path(__file__).resolve().parents[1] / "tests" / "assets" / "audio"


@dataclass(frozen=True)
class Recording:
    name: str
    audio: np.ndarray
    segments: list  # vad.Segment, unjoined
    members: list[str]  # fixture: the clip behind each unjoined segment (its expected text's key); else []


class KnownSegments:
    """Stands in for the VAD where the segments are already known (the same interface as SileroVad.segments)."""

    def __init__(self, recording: Recording):
        self.recording = recording

    def segments(self, audio: np.ndarray, max_segment_s: float):
        assert audio is self.recording.audio or np.array_equal(audio, self.recording.audio)
        return list(self.recording.segments)


# -- the recordings ----------------------------------------------------------------------------------------------------


def sentences_call(seconds: float = 300.0, seed: int = 0) -> Recording:
    from sensevoice_pipeline.speech.audio import load_mono_16k
    from sensevoice_pipeline.speech.vad import SileroVad

    vad = SileroVad()
    sentences = []
    for path in sorted(SPEECH_DIR.glob("*.mp3")):
        audio = load_mono_16k(path)
        sentences += [audio[s.start : s.end] for s in vad.segments(audio)]
    rng = np.random.default_rng(seed)
    parts, n = [], 0
    while n < seconds * SAMPLE_RATE:
        pause = np.zeros(int(rng.uniform(0.3, 1.2) * SAMPLE_RATE), dtype=np.float32)
        sentence = sentences[int(rng.integers(len(sentences)))] * rng.uniform(0.5, 1.0)
        parts += [pause, sentence.astype(np.float32)]
        n += pause.size + sentence.size
    parts.append(np.zeros(SAMPLE_RATE, dtype=np.float32))
    call = np.concatenate(parts)
    call = (call + 0.003 * rng.standard_normal(call.size)).astype(np.float32)
    return Recording("sentences", call, vad.segments(call, MAX_SEGMENT_S), [])


def fixture_call(gap_s: float = 0.5) -> Recording:
    from sensevoice_pipeline.speech.audio import load_mono_16k
    from sensevoice_pipeline.speech.vad import Segment

    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    parts, segments, members, n = [gap], [], [], gap.size
    for path in sorted((FIXTURE_MODEL_DIR / "clips").glob("*.wav")):
        if path.stem.startswith("nospeech"):
            continue  # no speech: a VAD would not send it
        clip = load_mono_16k(path)
        segments.append(Segment(n, n + clip.size))
        members.append(f"clips/{path.name}")
        parts += [clip, gap]
        n += clip.size + gap.size
    audio = np.concatenate(parts)
    assert audio.size > MAX_SEGMENT_S * SAMPLE_RATE, "the call must be long enough to be segmented"
    return Recording("fixture", audio, segments, members)


# -- one measurement ---------------------------------------------------------------------------------------------------


def estimated_padded_s(lengths: list[int], concurrency: int) -> float:
    """Audio seconds the encoder computes if each run of ``concurrency`` consecutive requests formed one dynamic
    batch, split by the server's length groups and padded to each group's longest."""
    from sensevoice_pipeline.serving.transcriber import length_groups

    total = 0
    for i in range(0, len(lengths), concurrency):
        batch = lengths[i : i + concurrency]
        total += sum(max(batch[j] for j in group) * len(group) for group in length_groups(batch))
    return total / SAMPLE_RATE


def encoder_stats(url: str) -> tuple[float, int, int]:
    """(compute seconds, executions, inferences) of the encoder so far, from Triton's own statistics."""
    import tritonclient.grpc as grpcclient

    from sensevoice_pipeline.serving.repository import ENCODER_MODEL

    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(ENCODER_MODEL, "", client_timeout=10).model_stats
    finally:
        client.close()
    ns = sum(s.inference_stats.compute_infer.ns for s in stats)
    return ns / 1e9, sum(s.execution_count for s in stats), sum(s.inference_count for s in stats)


async def transcribe_once(url: str, recording: Recording, merge_s: float, concurrency: int) -> dict:
    from sensevoice_pipeline.serving.client import SenseVoiceClient
    from sensevoice_pipeline.serving.recordings import RecordingTranscriber
    from sensevoice_pipeline.speech.audio import AudioInfo

    info = AudioInfo(
        format="WAV", sample_rate=SAMPLE_RATE, channels=1, duration_s=recording.audio.size / SAMPLE_RATE
    )
    async with SenseVoiceClient(url, max_concurrency=concurrency) as client:
        transcriber = RecordingTranscriber(client, MAX_SEGMENT_S, KnownSegments(recording), merge_s)
        before = encoder_stats(url)
        t0 = time.perf_counter()
        transcript = await transcriber.transcribe_channels(info, [recording.audio], "auto", True)
        wall = time.perf_counter() - t0
        after = encoder_stats(url)
    lengths = [s.segment.audio.size for s in transcript.segments]
    return {
        "requests": len(lengths),
        "audio_s": sum(lengths) / SAMPLE_RATE,
        "padded_est_s": estimated_padded_s(lengths, concurrency),
        "encoder_compute_s": after[0] - before[0],
        "encoder_executions": after[1] - before[1],
        "wall_s": wall,
        "answers": [(s.segment.start_s, s.segment.end_s, s.answer.text) for s in transcript.segments],
    }


# -- the answers -------------------------------------------------------------------------------------------------------


def answer_agreement(recording: Recording, answers: list[tuple[float, float, str]]) -> dict:
    """The fixture call's answers against the fixture model's known answer for each clip (hint auto, ITN on): for
    each sent segment, whether its plain text is its clips' texts in order, and whether its language / emotion /
    event tags are its first clip's."""
    from sensevoice_pipeline.speech.tags import parse

    known = {}
    for line in (FIXTURE_MODEL_DIR / "expected.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if case["language"] == "auto" and case["use_itn"]:
            known[case["clip"]] = parse(case["text"])
    text_same = tags_same = 0
    for start_s, end_s, raw in answers:
        clips = [
            m
            for seg, m in zip(recording.segments, recording.members)
            if start_s <= seg.start_s and seg.end_s <= end_s + 1e-9
        ]
        got = parse(raw)
        want = [known[c] for c in clips]
        text_same += "".join(got.text.split()) == "".join("".join(w.text.split()) for w in want)
        tags_same += (got.language, got.emotion, got.event) == (
            want[0].language,
            want[0].emotion,
            want[0].event,
        )
    return {"segments": len(answers), "text_as_clips": text_same, "tags_of_first_clip": tags_same}


# -- the run -----------------------------------------------------------------------------------------------------------


def measure(
    repository: Path, recordings: list[Recording], merges: list[float], rounds: int, concurrency: int
) -> dict:
    from sensevoice_pipeline.serving.server import LocalTriton

    results: dict = {r.name: {m: [] for m in merges} for r in recordings}
    with LocalTriton(repository) as server:
        for recording in recordings:  # warm-up: the first requests of a fresh server pay for lazy set-up
            asyncio.run(transcribe_once(server.grpc_url, recording, 0.0, concurrency))
        for k in range(rounds):
            order = merges[k % len(merges) :] + merges[: k % len(merges)]
            for merge_s in order:
                for recording in recordings:
                    run = asyncio.run(transcribe_once(server.grpc_url, recording, merge_s, concurrency))
                    results[recording.name][merge_s].append(run)
                    log(
                        f"round {k + 1} {recording.name} merge {merge_s:g} s: {run['requests']} requests, "
                        f"encoder {run['encoder_compute_s']:.2f} s, wall {run['wall_s']:.2f} s"
                    )
    return results


def summarise(recording: Recording, runs: dict[float, list[dict]]) -> list[dict]:
    base = runs[min(runs)]  # merging off (the smallest length asked for)
    rows = []
    for merge_s, these in runs.items():
        first = these[0]
        row = {
            "merge_s": merge_s,
            "requests": first["requests"],
            "audio_s": round(first["audio_s"], 1),
            "padded_est_s": round(first["padded_est_s"], 1),
            "encoder_executions": statistics.median(r["encoder_executions"] for r in these),
            "encoder_compute_s": round(statistics.median(r["encoder_compute_s"] for r in these), 3),
            "wall_s": round(statistics.median(r["wall_s"] for r in these), 3),
            "encoder_ratio": round(
                statistics.median(
                    r["encoder_compute_s"] / b["encoder_compute_s"] for r, b in zip(these, base)
                ),
                3,
            ),
            "wall_ratio": round(statistics.median(r["wall_s"] / b["wall_s"] for r, b in zip(these, base)), 3),
            "answers_stable": all(r["answers"] == first["answers"] for r in these),
        }
        if recording.members:
            row.update(answer_agreement(recording, first["answers"]))
        rows.append(row)
    return rows


def print_table(model: str, name: str, rows: list[dict]) -> None:
    columns = [
        "merge_s",
        "requests",
        "audio_s",
        "padded_est_s",
        "encoder_executions",
        "encoder_compute_s",
        "encoder_ratio",
        "wall_s",
        "wall_ratio",
    ]
    if "text_as_clips" in rows[0]:
        columns += ["segments", "text_as_clips", "tags_of_first_clip"]
    print(f"\n{model}: {name}")
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))


def repositories(paths: Paths, models: list[str]) -> dict[str, Path]:
    from .assets import build_models

    out = {}
    for model in models:
        size, precision = model.split("-") if "-" in model else (model, "fp32")
        repo = paths.repository(size, precision)
        if not repo.is_dir():
            build_models(paths, size)
        out[model] = repo
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.merging", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["fixture", "full-int8"],
        help="fixture (the trained fixture model, fp32), full-int8, full-fp32, fixture-int8, ...",
    )
    parser.add_argument("--merge", nargs="+", type=float, default=[0.0, 5.0, 10.0, 15.0, 25.0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--call-seconds", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="onnxruntime threads inside Triton, shared out among its encoder instances",
    )
    args = parser.parse_args(argv)
    os.environ["SVP_ORT_THREADS"] = str(triton_threads_each(args.threads))
    merges = sorted(set(args.merge))
    paths = Paths(args.workdir)
    recordings = [sentences_call(args.call_seconds), fixture_call()]
    for r in recordings:
        log(f"{r.name}: {r.audio.size / SAMPLE_RATE:.1f} s, {len(r.segments)} segments unjoined")
    report = {
        "merges": merges,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "loadavg_before": os.getloadavg(),
        "models": {},
    }
    for model, repo in repositories(paths, args.models).items():
        runs = measure(repo, recordings, merges, args.rounds, args.concurrency)
        report["models"][model] = {r.name: summarise(r, runs[r.name]) for r in recordings}
        for r in recordings:
            print_table(model, r.name, report["models"][model][r.name])
    report["loadavg_after"] = os.getloadavg()
    out = paths.workdir / "merging.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    log(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
