"""A micro SenseVoiceSmall checkpoint: funasr's own classes and the real config with small dimensions, seeded
random weights, the real am.mvn and a synthetic tokenizer with the real special tokens.

It is built in seconds, loads with funasr's ``AutoModel`` and goes through export and serving exactly like the
real model, so tests can compare every stage with funasr itself.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

REFERENCE_DIR = Path(__file__).resolve().parent / "reference_model"
REFERENCE_TOKENIZER = "SYNTHETIC_chn_jpn_yue_eng_ko_spectok.bpe.model"


@dataclass(frozen=True)
class EncoderSize:
    output_size: int = 32
    attention_heads: int = 4
    linear_units: int = 64
    num_blocks: int = 2
    tp_blocks: int = 1

    @classmethod
    def full(cls) -> EncoderSize:
        """The real SenseVoiceSmall size (234 M parameters)."""
        conf = yaml.safe_load((REFERENCE_DIR / "config.yaml").read_text())["encoder_conf"]
        return cls(**{k: conf[k] for k in cls.__dataclass_fields__})


def build_checkpoint(
    out_dir: str | Path,
    size: EncoderSize = EncoderSize(),
    seed: int = 0,
    tokenizer: str | Path | None = None,
) -> Path:
    """Write config.yaml, model.pt, am.mvn, the tokenizer and configuration.json into ``out_dir``."""
    import torch
    from funasr.models.sense_voice.model import SenseVoiceSmall

    from sensevoice_pipeline.speech.decoder import Tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_src = Path(tokenizer) if tokenizer else REFERENCE_DIR / REFERENCE_TOKENIZER
    shutil.copyfile(tokenizer_src, out / tokenizer_src.name)
    shutil.copyfile(REFERENCE_DIR / "am.mvn", out / "am.mvn")

    config = yaml.safe_load((REFERENCE_DIR / "config.yaml").read_text())
    config["encoder_conf"].update(asdict(size))
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    file_map = json.loads((REFERENCE_DIR / "configuration.json").read_text())
    file_map["file_path_metas"]["tokenizer_conf"]["bpemodel"] = tokenizer_src.name
    (out / "configuration.json").write_text(json.dumps(file_map, indent=2))

    vocab_size = Tokenizer(out / tokenizer_src.name).vocab_size
    feature_dim = config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"]
    torch.manual_seed(seed)
    model = SenseVoiceSmall(
        encoder=config["encoder"],
        encoder_conf=config["encoder_conf"],
        input_size=feature_dim,
        vocab_size=vocab_size,
        **config["model_conf"],
    )
    torch.save(model.state_dict(), out / "model.pt")
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Build a micro (or full-size) random-weight SenseVoiceSmall checkpoint."
    )
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-size", action="store_true", help="the real 234 M-parameter size")
    args = parser.parse_args(argv)
    size = EncoderSize.full() if args.full_size else EncoderSize()
    print(build_checkpoint(args.out_dir, size=size, seed=args.seed))


if __name__ == "__main__":
    main()
