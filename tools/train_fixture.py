"""Train the fixture model: a tiny SenseVoiceSmall (funasr's own classes, the real config with small dimensions)
that answers a known set of synthetic clips with exact rich transcriptions.

    python tools/train_fixture.py OUT_DIR [--seed 0] [--max-steps 3000]

Everything is made here, deterministically from the seed:

* a sentencepiece tokenizer (sentencepiece's own trainer) over the clips' texts, with every SenseVoice tag as a
  user-defined symbol and ``<unk>`` at id 0, which is the CTC blank and never occurs in a target;
* 16 kHz clips whose frequency bands encode what the model must answer (see ``synthesize``): a low drone for the
  language, a high marker tone for the emotion, a pattern in the 2.8-4.4 kHz band for the event, and one two-tone
  "syllable" per spoken word;
* the checkpoint dir written by ``sensevoice_export.micro.build_checkpoint`` (config.yaml, model.pt, am.mvn, the tokenizer,
  configuration.json), whose seeded random weights are then trained with funasr's CTC loss over all output frames
  (the four query frames included, as funasr's greedy decoding reads them too) plus funasr's cross-entropy on the
  four query frames, with the language hint and text-normalisation switch given as the query embeddings exactly
  as ``SenseVoiceSmall.inference`` builds them.

Features come from ``sensevoice_pipeline.speech.frontend.Frontend`` with the real am.mvn, on the int16 samples written to
``clips/*.wav``, so training sees what inference sees. Training stops once every case of ``expected.jsonl`` decodes
exactly (greedy CTC) with a safety margin on every frame, or at ``--max-steps``; the dir is then checked with
funasr's ``AutoModel`` itself.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sensevoice_export.micro import EncoderSize, build_checkpoint
from sensevoice_pipeline.speech.languages import EVENT_EMOTION_QUERY_IDS, LANGUAGE_IDS, TEXTNORM_IDS

SAMPLE_RATE = 16000
TOKENIZER_NAME = "fixture_spectok.bpe.model"
SIZE = EncoderSize(output_size=64, attention_heads=4, linear_units=128, num_blocks=3, tp_blocks=1)
VOCAB_SIZE = 230

LANGUAGE_TAGS = ("zh", "en", "yue", "ja", "ko", "nospeech")
EMOTION_TAGS = ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN")
EVENT_TAGS = ("Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Event_UNK")
ITN_TAGS = ("withitn", "woitn")
SPECIAL_TAGS = tuple(f"<|{t}|>" for t in LANGUAGE_TAGS + EMOTION_TAGS + EVENT_TAGS + ITN_TAGS)

# --- what the audio encodes ------------------------------------------------------------------------------------
# Language: a steady sine drone. The zh~yue clip sits between zh and yue: it is read as zh unless the hint says yue.
LANGUAGE_DRONE_HZ = {"zh": 100.0, "zh~yue": 130.0, "yue": 160.0, "en": 220.0, "ja": 280.0, "ko": 340.0}
# Emotion: a steady marker tone above the speech band (none for NEUTRAL); ANGRY clips are also louder.
EMOTION_TONE_HZ = {"HAPPY": 4800.0, "SAD": 5400.0, "ANGRY": 6000.0, "SURPRISED": 6600.0, "FEARFUL": 7200.0}
EVENT_BAND_HZ = (2800.0, 4400.0)
# Words: one 240 ms two-tone "syllable" per spoken word, DTMF-like (a low and a high frequency per word).
WORD_LOW_HZ = np.linspace(400.0, 1050.0, 8)
WORD_HIGH_HZ = np.linspace(1250.0, 2450.0, 8)
LEAD_S, WORD_S, GAP_S, TAIL_S = 0.20, 0.24, 0.06, 0.35


@dataclass(frozen=True)
class ClipSpec:
    name: str
    voice: str  # a key of LANGUAGE_DRONE_HZ, or "nospeech"
    emotion: str
    event: str
    words: tuple[str, ...]
    # hint language -> (text without ITN, text with ITN); "auto" answers with the first entry.
    texts: dict


def _clip(name, voice, emotion, event, words, **texts) -> ClipSpec:
    return ClipSpec(name, voice, emotion, event, tuple(words.split()), texts)


# Texts are written with spaces between words; the spaces are dropped for languages written without them (the
# words are what the tokenizer is trained on).
UNSPACED_LANGUAGES = ("zh", "yue", "ja")
CLIPS: tuple[ClipSpec, ...] = (
    _clip(
        "en_refund_angry",
        "en",
        "ANGRY",
        "Speech",
        "i want a refund",
        en=("i want a refund", "I want a refund."),
    ),
    _clip(
        "en_thanks_happy_applause",
        "en",
        "HAPPY",
        "Applause",
        "thank you so much",
        en=("thank you so much", "Thank you so much!"),
    ),
    _clip(
        "en_paid_sad_cough",
        "en",
        "SAD",
        "Cough",
        "i paid twenty dollars",
        en=("i paid twenty dollars", "I paid 20 dollars."),
    ),
    _clip(
        "en_order_neutral_bgm",
        "en",
        "NEUTRAL",
        "BGM",
        "where is my order",
        en=("where is my order", "Where is my order?"),
    ),
    _clip(
        "en_great_happy_laughter",
        "en",
        "HAPPY",
        "Laughter",
        "this is great",
        en=("this is great", "This is great!"),
    ),
    _clip("zh_refund_angry", "zh", "ANGRY", "Speech", "我 要 退款", zh=("我 要 退款", "我 要 退款 。")),
    _clip("zh_thanks_happy_laughter", "zh", "HAPPY", "Laughter", "谢谢 你", zh=("谢谢 你", "谢谢 你 ！")),
    _clip(
        "zh_paid_neutral_bgm",
        "zh",
        "NEUTRAL",
        "BGM",
        "我 付了 二十 块",
        zh=("我 付了 二十 块", "我 付了 20 块 。"),
    ),
    _clip(
        "zh_yue_ambiguous_sad",
        "zh~yue",
        "SAD",
        "Speech",
        "我 想 退款",
        zh=("我 想 退款", "我 想 退款 。"),
        yue=("我 想 退錢", "我 想 退錢 。"),
    ),
    _clip("yue_thanks_happy", "yue", "HAPPY", "Speech", "唔該 你", yue=("唔該 你", "唔該 你 。")),
    _clip("yue_angry_cough", "yue", "ANGRY", "Cough", "我 好 嬲", yue=("我 好 嬲", "我 好 嬲 ！")),
    _clip(
        "yue_surprised_applause",
        "yue",
        "SURPRISED",
        "Applause",
        "真 係 咁 快",
        yue=("真係 咁 快", "真係 咁 快 ？"),
    ),
    _clip(
        "ja_thanks_happy",
        "ja",
        "HAPPY",
        "Speech",
        "ありがとう ございます",
        ja=("ありがとう ございます", "ありがとう ございます 。"),
    ),
    _clip(
        "ja_refund_angry_bgm",
        "ja",
        "ANGRY",
        "BGM",
        "返金 して ください",
        ja=("返金 して ください", "返金 して ください 。"),
    ),
    _clip("ja_sorry_sad_cough", "ja", "SAD", "Cough", "すみません", ja=("すみません", "すみません 。")),
    _clip("ko_thanks_neutral", "ko", "NEUTRAL", "Speech", "감사 합니다", ko=("감사합니다", "감사합니다.")),
    _clip(
        "ko_great_happy_laughter",
        "ko",
        "HAPPY",
        "Laughter",
        "정말 좋아요",
        ko=("정말 좋아요", "정말 좋아요!"),
    ),
    _clip("ko_help_fearful", "ko", "FEARFUL", "Speech", "도와 주세요", ko=("도와주세요", "도와주세요!")),
    _clip("nospeech_silence", "nospeech", "EMO_UNKNOWN", "Event_UNK", "", nospeech=("", "")),
    _clip("nospeech_hold_music", "nospeech", "EMO_UNKNOWN", "BGM", "", nospeech=("", "")),
)


def written(text: str, language: str) -> str:
    return text.replace(" ", "") if language in UNSPACED_LANGUAGES else text


def tokenizer_corpus(clips=CLIPS) -> list[str]:
    """The lines the tokenizer learns from: whole texts of spaced languages, single words of the others."""
    lines = []
    for clip in clips:
        for language, forms in clip.texts.items():
            for text in forms:
                lines += text.split() if language in UNSPACED_LANGUAGES else [text] if text else []
    return sorted(set(lines))


@dataclass(frozen=True)
class Case:
    clip: ClipSpec
    hint: str  # the language hint sent with the clip
    use_itn: bool
    text: str  # the exact raw transcription


def rich_text(clip: ClipSpec, language: str, use_itn: bool) -> str:
    body = written(clip.texts[language][1 if use_itn else 0], language)
    itn = "withitn" if use_itn else "woitn"
    return f"<|{language}|><|{clip.emotion}|><|{clip.event}|><|{itn}|>{body}"


def build_cases(clips=CLIPS) -> list[Case]:
    """Every clip with hint ``auto`` (the first language of ``texts``) and with each language of ``texts`` as the
    hint, both with and without ITN. No-speech clips are only sent with ``auto``."""
    cases = []
    for clip in clips:
        languages = list(clip.texts)
        hints = [("auto", languages[0])] + [
            (lang, lang) for lang in languages if lang in LANGUAGE_IDS and lang != "nospeech"
        ]
        for hint, language in hints:
            for use_itn in (False, True):
                cases.append(Case(clip, hint, use_itn, rich_text(clip, language, use_itn)))
    return cases


# --- tokenizer -------------------------------------------------------------------------------------------------


def train_tokenizer(path: Path, vocab_size: int = VOCAB_SIZE) -> None:
    import sentencepiece as spm

    model = io.BytesIO()
    # An iterator and a writer rather than files: the model then records no temporary paths and is the same bytes
    # on every run.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tokenizer_corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        normalization_rule_name="identity",  # keep full-width punctuation as written
        add_dummy_prefix=False,  # "<|woitn|>i want": no space after the tags
        user_defined_symbols=list(SPECIAL_TAGS),
        unk_id=0,
        unk_piece="<unk>",  # id 0 is the CTC blank: funasr drops it before decoding
        bos_id=1,
        eos_id=2,
        pad_id=-1,  # sos 1 / eos 2 as in config.yaml
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())


def encode_targets(tokenizer_path: Path, cases: list[Case]) -> list[list[int]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    targets = []
    for case in cases:
        ids = sp.encode(case.text)
        if 0 in ids or sp.decode(ids) != case.text:
            raise RuntimeError(f"tokenizer does not round-trip {case.text!r}: {sp.id_to_piece(ids)}")
        tag_ids = {sp.piece_to_id(p) for p in SPECIAL_TAGS}
        want_tags = [sp.piece_to_id(t + "|>") for t in case.text.split("|>")[:4]]
        if ids[:4] != want_tags or any(i in tag_ids for i in ids[4:]):
            raise RuntimeError(f"{case.text!r}: expected four tags then text, got {sp.id_to_piece(ids)}")
        targets.append(ids)
    return targets


# --- audio -----------------------------------------------------------------------------------------------------


def word_tones(clips=CLIPS) -> dict[str, tuple[float, float]]:
    """A (low, high) frequency pair per spoken word, in order of first appearance."""
    words: list[str] = []
    for clip in clips:
        words += [w for w in clip.words if w not in words]
    pairs = [(lo, hi) for hi in WORD_HIGH_HZ for lo in WORD_LOW_HZ]
    if len(words) > len(pairs):
        raise ValueError(f"{len(words)} words but only {len(pairs)} tone pairs")
    # Spread consecutive words over both grids (a stride coprime with the grid size).
    return {w: pairs[(i * 9) % len(pairs)] for i, w in enumerate(words)}


def _ramp(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n)
    ramp = min(ramp, n // 2)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp], env[n - ramp :] = edge, edge[::-1]
    return env


def _sine(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))


def _band_noise(n: int, rng: np.random.Generator, band=EVENT_BAND_HZ) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.abs(noise).max() + 1e-9)


def _event(event: str, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    s = lambda seconds: int(seconds * SAMPLE_RATE)  # noqa: E731
    if event == "Laughter":  # "ha-ha-ha-ha-ha": five 80 ms noise bursts, one every 160 ms
        burst = _band_noise(s(0.08), rng) * _ramp(s(0.08), s(0.01))
        for k in range(5):
            start = s(0.25 + 0.16 * k)
            out[start : start + burst.size] += 0.25 * burst[: max(0, n - start)]
    elif event == "Applause":  # dense random clicks all through
        for start in rng.integers(0, n - s(0.01), size=int(40 * n / SAMPLE_RATE)):
            click = _band_noise(s(0.01), rng) * np.hanning(s(0.01))
            out[start : start + click.size] += 0.3 * click
    elif event == "BGM":  # a melody of pure tones, a note every 300 ms
        notes = (2960.0, 3520.0, 3950.0, 3320.0)
        for k, start in enumerate(range(0, n, s(0.3))):
            length = min(s(0.3), n - start)
            out[start : start + length] += 0.08 * _sine(notes[k % 4], length, rng) * _ramp(length, s(0.02))
    elif event == "Cough":  # two loud decaying noise bursts near the start
        for start in (s(0.05), s(0.30)):
            length = s(0.15)
            decay = np.exp(-np.arange(length) / s(0.04))
            out[start : start + length] += 0.5 * _band_noise(length, rng) * decay * _ramp(length, s(0.005))
    elif event not in ("Speech", "Event_UNK"):
        raise ValueError(f"no sound for event {event}")
    return out


def synthesize(clip: ClipSpec, seed: int, tones: dict[str, tuple[float, float]]) -> np.ndarray:
    """The clip as int16 samples."""
    rng = np.random.default_rng([seed, sum(map(ord, clip.name))])
    s = lambda seconds: int(round(seconds * SAMPLE_RATE))  # noqa: E731
    if clip.voice == "nospeech":
        n = s(1.2)
        audio = 0.004 * rng.standard_normal(n) + _event(clip.event, n, rng)
    else:
        n = s(LEAD_S + len(clip.words) * (WORD_S + GAP_S) + TAIL_S)
        audio = 0.003 * rng.standard_normal(n)
        voiced = s(LEAD_S + len(clip.words) * (WORD_S + GAP_S))
        audio[:voiced] += 0.08 * _sine(LANGUAGE_DRONE_HZ[clip.voice], voiced, rng) * _ramp(voiced, s(0.03))
        if clip.emotion in EMOTION_TONE_HZ:
            audio[:voiced] += (
                0.04 * _sine(EMOTION_TONE_HZ[clip.emotion], voiced, rng) * _ramp(voiced, s(0.03))
            )
        loudness = 0.2 if clip.emotion == "ANGRY" else 0.12
        for k, word in enumerate(clip.words):
            start, length = s(LEAD_S + k * (WORD_S + GAP_S)), s(WORD_S)
            lo, hi = tones[word]
            syllable = _sine(lo, length, rng) + 0.8 * _sine(hi, length, rng)
            audio[start : start + length] += loudness * syllable * _ramp(length, s(0.015))
        audio += _event(clip.event, n, rng)
    peak = np.abs(audio).max()
    if peak > 0.9:
        audio *= 0.9 / peak
    return np.round(audio * 32767).astype(np.int16)


# --- model -----------------------------------------------------------------------------------------------------


def _query_ids(case: Case) -> tuple[int, int]:
    return LANGUAGE_IDS[case.hint], TEXTNORM_IDS["withitn" if case.use_itn else "woitn"]


def encode_batch(model, speech, speech_lengths, language, textnorm):
    """``SenseVoiceSmall.inference``'s encoder input: [language, event, emotion, textnorm] queries, then speech."""
    import torch

    batch = speech.shape[0]
    language_query = model.embed(language).unsqueeze(1)
    textnorm_query = model.embed(textnorm).unsqueeze(1)
    event_emotion = model.embed(torch.tensor([list(EVENT_EMOTION_QUERY_IDS)])).expand(batch, -1, -1)
    x = torch.cat((language_query, event_emotion, textnorm_query, speech), dim=1)
    encoder_out, encoder_out_lens = model.encoder(x, speech_lengths + 4)
    if isinstance(encoder_out, tuple):
        encoder_out = encoder_out[0]
    return encoder_out, encoder_out_lens


def greedy_ids(log_probs, length: int) -> list[int]:
    from sensevoice_pipeline.speech.decoder import ctc_greedy_ids

    return ctc_greedy_ids(log_probs[:length].argmax(-1).numpy(), length)


def train(
    out_dir: Path,
    seed: int = 0,
    max_steps: int = 3000,
    margin: float = 2.0,
    lr: float = 3e-3,
    eval_every: int = 25,
    log=print,
) -> dict:
    import soundfile as sf
    import torch
    import yaml
    from funasr.models.sense_voice.model import SenseVoiceSmall

    from sensevoice_pipeline.speech.frontend import Frontend, FrontendConfig

    torch.set_num_threads(1)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    cases = build_cases()

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = Path(tmp) / TOKENIZER_NAME
        train_tokenizer(tokenizer)
        build_checkpoint(out_dir, size=SIZE, seed=seed, tokenizer=tokenizer)
    tokenizer = out_dir / TOKENIZER_NAME
    targets = encode_targets(tokenizer, cases)

    # Clips: written as 16-bit PCM, features computed from what was written.
    clips_dir = out_dir / "clips"
    shutil.rmtree(clips_dir, ignore_errors=True)
    clips_dir.mkdir()
    tones = word_tones()
    config = yaml.safe_load((out_dir / "config.yaml").read_text())
    frontend = Frontend(FrontendConfig.from_dict(config["frontend_conf"]), out_dir / "am.mvn")
    features = {}
    for clip in CLIPS:
        path = clips_dir / f"{clip.name}.wav"
        sf.write(path, synthesize(clip, seed, tones), SAMPLE_RATE, subtype="PCM_16")
        audio, rate = sf.read(path, dtype="float32")
        assert rate == SAMPLE_RATE
        features[clip.name] = torch.from_numpy(frontend(audio))

    # The model: funasr's class from the written config, with dropout off while training (no effect on weights).
    encoder_conf = dict(
        config["encoder_conf"], dropout_rate=0.0, positional_dropout_rate=0.0, attention_dropout_rate=0.0
    )
    model = SenseVoiceSmall(
        encoder=config["encoder"],
        encoder_conf=encoder_conf,
        input_size=frontend.config.feature_dim,
        vocab_size=len(tokenizer_pieces(tokenizer)),
        **config["model_conf"],
    )
    model.load_state_dict(torch.load(out_dir / "model.pt", map_location="cpu"))
    n_params = sum(p.numel() for p in model.parameters())

    lengths = torch.tensor([features[c.clip.name].shape[0] for c in cases])
    speech = torch.nn.utils.rnn.pad_sequence([features[c.clip.name] for c in cases], batch_first=True)
    queries = torch.tensor([_query_ids(c) for c in cases])
    language, textnorm = queries[:, 0], queries[:, 1]
    target_lengths = torch.tensor([len(t) for t in targets])
    target_pad = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(t) for t in targets], batch_first=True, padding_value=-1
    )
    pieces = tokenizer_pieces(tokenizer)

    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    step, done, report = 0, False, {}
    while step < max_steps and not done:
        model.train()
        encoder_out, encoder_out_lens = encode_batch(model, speech.clone(), lengths, language, textnorm)
        loss_ctc = model.ctc(encoder_out, encoder_out_lens, target_pad, target_lengths)
        loss_tags, _ = model._calc_rich_ce_loss(encoder_out[:, :4, :], target_pad[:, :4])
        loss = loss_ctc + loss_tags  # funasr's CTC loss is already the mean over the batch
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        step += 1
        if step % eval_every == 0 or step == max_steps:
            report = evaluate(model, speech, lengths, language, textnorm, cases, pieces, tokenizer)
            done = report["wrong"] == 0 and report["min_margin"] >= margin
            log(
                f"step {step:5d}  loss {loss.item():8.4f}  wrong {report['wrong']:3d}/{len(cases)}  "
                f"min margin {report['min_margin']:6.2f}  {time.perf_counter() - started:6.1f}s"
            )

    train_seconds = time.perf_counter() - started
    torch.save(model.state_dict(), out_dir / "model.pt")
    with open(out_dir / "expected.jsonl", "w", encoding="utf-8") as f:
        for case in cases:
            row = {
                "clip": f"clips/{case.clip.name}.wav",
                "language": case.hint,
                "use_itn": case.use_itn,
                "text": case.text,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {
        "steps": step,
        "converged": done,
        "train_seconds": train_seconds,
        "n_params": n_params,
        "vocab_size": len(pieces),
        "cases": cases,
        "report": report,
        "seed": seed,
        "max_steps": max_steps,
        "margin": margin,
        "lr": lr,
    }


def tokenizer_pieces(tokenizer: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def evaluate(model, speech, lengths, language, textnorm, cases, pieces, tokenizer) -> dict:
    """Greedy CTC decoding of every case; the margin is the smallest gap, over all frames, between the best and
    the second-best log-probability (how far any frame is from flipping)."""
    import torch

    from sensevoice_pipeline.speech.decoder import Tokenizer

    tok = Tokenizer(tokenizer)
    model.eval()
    with torch.no_grad():
        encoder_out, encoder_out_lens = encode_batch(model, speech.clone(), lengths, language, textnorm)
        log_probs = model.ctc.log_softmax(encoder_out)
    wrong, min_margin, mistakes = 0, float("inf"), []
    for i, case in enumerate(cases):
        n = int(encoder_out_lens[i])
        got = tok.decode(greedy_ids(log_probs[i], n))
        if got != case.text:
            wrong += 1
            mistakes.append((case, got))
        top2 = log_probs[i, :n].topk(2, dim=-1).values
        min_margin = min(min_margin, float((top2[:, 0] - top2[:, 1]).min()))
    return {"wrong": wrong, "min_margin": min_margin, "mistakes": mistakes}


def verify_with_funasr(out_dir: Path) -> list[tuple[dict, str]]:
    """Every case of expected.jsonl through funasr's own AutoModel; returns the mismatches."""
    import contextlib
    import io
    import logging

    import soundfile as sf

    logging.getLogger().setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from funasr import AutoModel

        auto = AutoModel(
            model=str(out_dir),
            device="cpu",
            disable_update=True,
            disable_pbar=True,
            disable_log=True,
            frontend_conf={"dither": 0.0},
        )
    mismatches = []
    for line in (out_dir / "expected.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        audio, _ = sf.read(out_dir / case["clip"], dtype="float32")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            got = auto.generate(
                input=audio, language=case["language"], use_itn=case["use_itn"], disable_pbar=True
            )[0]["text"]
        if got != case["text"]:
            mismatches.append((case, got))
    return mismatches


def write_readme(out_dir: Path, result: dict, command: str) -> None:
    cases = result["cases"]
    sizes = {
        p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != "README.md"
    }
    clip_bytes = sum(p.stat().st_size for p in (out_dir / "clips").glob("*.wav"))
    tones = word_tones()
    lines = [
        "# Fixture model",
        "",
        "A tiny SenseVoiceSmall **trained here** to answer a known set of synthetic clips exactly, so that",
        "end-to-end tests can check real answers (an angry clip comes out as `<|ANGRY|>`). It is not a speech",
        "model: the clips are tone patterns, and it answers nothing but them.",
        "",
        "Made by (reproducible; deterministic from the seed on one CPU thread):",
        "",
        "```",
        command,
        "```",
        "",
        f"- seed {result['seed']}, Adam lr {result['lr']}, full batch of all {len(cases)} cases, stopped after "
        f"{result['steps']} steps (max {result['max_steps']}) once every case decoded exactly with every frame's "
        f"best log-probability at least {result['margin']} above the second best",
        f"- training wall time: {result['train_seconds']:.0f} s on 1 CPU thread",
        f"- funasr `SenseVoiceSmall` with the real `config.yaml` (SenseVoiceEncoderSmall, SANM) and these "
        f"encoder sizes: {', '.join(f'{k}={v}' for k, v in asdict(SIZE).items())}; "
        f"{result['n_params']:,} parameters",
        f"- tokenizer `{TOKENIZER_NAME}`: sentencepiece BPE trained on the clips' texts, {result['vocab_size']} "
        "pieces, id 0 `<unk>` (the CTC blank, never in a target), 1 `<s>`, 2 `</s>`, the 25 SenseVoice tags as "
        "user-defined symbols",
        "- features: `sensevoice_pipeline.speech.frontend.Frontend` with the real `am.mvn` on the 16-bit samples of "
        "`clips/*.wav` (the same features funasr's WavFrontend makes)",
        "- loss: funasr's CTC (log_softmax of `ctc.ctc_lo`) over all output frames, the four query frames "
        "included, against the whole rich transcription, plus funasr's cross-entropy on the query frames; the "
        "language hint and ITN switch are the query embeddings, as in `SenseVoiceSmall.inference`",
        "",
        "Files: "
        + ", ".join(f"`{k}` ({v / 1024:.0f} KiB)" for k, v in sizes.items())
        + f", `clips/` ({len(CLIPS)} wav, {clip_bytes / 1024:.0f} KiB).",
        "",
        "## What the clips encode",
        "",
        "16 kHz, 16-bit mono, 1.2-1.8 s, frequency bands that do not overlap:",
        "",
        "- language: a sine drone, "
        + ", ".join(f"{k} {v:.0f} Hz" for k, v in LANGUAGE_DRONE_HZ.items())
        + " (`zh~yue` is the ambiguous clip: `zh` with hint `auto` or `zh`, `yue` with hint `yue`, whose text "
        "also differs)",
        "- emotion: a marker tone, "
        + ", ".join(f"{k} {v:.0f} Hz" for k, v in EMOTION_TONE_HZ.items())
        + ", none for NEUTRAL; ANGRY clips are louder",
        f"- event, in {EVENT_BAND_HZ[0]:.0f}-{EVENT_BAND_HZ[1]:.0f} Hz: Laughter five 80 ms noise bursts, "
        "Applause dense clicks, BGM a melody of tones, Cough two loud decaying bursts, Speech nothing",
        f"- words: one {WORD_S * 1000:.0f} ms two-tone syllable per spoken word (low 400-1050 Hz, high "
        "1250-2450 Hz), the same pair for the same word in every clip; the model renders them as text in the "
        "clip's language, with or without ITN (capitals, punctuation, digits)",
        "- no speech: faint noise only (`Event_UNK`) or the BGM melody only (`BGM`), answered as `<|nospeech|>`",
        "",
        "| clip | language | emotion | event | words (tones Hz) |",
        "|---|---|---|---|---|",
    ]
    for clip in CLIPS:
        words = " ".join(f"{w} ({tones[w][0]:.0f}+{tones[w][1]:.0f})" for w in clip.words) or "-"
        lines.append(f"| `{clip.name}` | {clip.voice} | {clip.emotion} | {clip.event} | {words} |")
    lines += [
        "",
        "## Cases (`expected.jsonl`)",
        "",
        "One line per (clip, language hint, use_itn): the exact `text` of",
        '`AutoModel(model=DIR, device="cpu", disable_update=True, frontend_conf={"dither": 0.0})'
        '.generate(input=waveform, language=hint, use_itn=use_itn)[0]["text"]`. Other hints than those listed '
        "were never trained and give unspecified answers.",
        "",
        "| clip | hint | use_itn | text |",
        "|---|---|---|---|",
    ]
    for case in cases:
        lines.append(f"| `{case.clip.name}` | {case.hint} | {case.use_itn} | `{case.text}` |")
    (out_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/train_fixture.py",
        description="Train the fixture model (a tiny SenseVoiceSmall that answers its synthetic clips exactly) "
        "into OUT_DIR: checkpoint files, clips/*.wav, expected.jsonl and README.md.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="seed for the clips and the weights (default 0)")
    parser.add_argument(
        "--max-steps", type=int, default=3000, help="give up after this many steps (default 3000)"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=2.0,
        help="stop once every frame's best log-probability leads by this much (default 2.0)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the final check with funasr's AutoModel"
    )
    args = parser.parse_args(argv)

    result = train(args.out_dir, seed=args.seed, max_steps=args.max_steps, margin=args.margin)
    command = f"python tools/train_fixture.py {args.out_dir} --seed {args.seed} --max-steps {args.max_steps}"
    if args.margin != 2.0:
        command += f" --margin {args.margin}"
    write_readme(args.out_dir, result, command)
    if not result["converged"]:
        for case, got in result["report"].get("mistakes", [])[:20]:
            print(f"WRONG {case.clip.name} hint={case.hint} itn={case.use_itn}: {got!r} != {case.text!r}")
        print(f"not converged after {result['steps']} steps", file=sys.stderr)
        return 1
    print(
        f"converged after {result['steps']} steps, {result['train_seconds']:.0f} s, "
        f"{result['n_params']:,} parameters"
    )
    if not args.no_verify:
        mismatches = verify_with_funasr(args.out_dir)
        for case, got in mismatches:
            print(f"funasr MISMATCH {case}: got {got!r}")
        if mismatches:
            return 1
        print("funasr AutoModel answers every case of expected.jsonl exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
