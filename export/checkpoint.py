"""Finding, checking and loading a SenseVoiceSmall checkpoint directory with funasr's own classes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from sensevoice_pipeline.errors import SvpError

log = logging.getLogger(__name__)

HUB_HINT = "a local checkpoint dir, or a ModelScope / Hugging Face id such as iic/SenseVoiceSmall"


class CheckpointError(SvpError, RuntimeError):
    """The checkpoint is missing, incomplete or unreadable."""


class UnsafeCheckpointError(CheckpointError):
    """model.pt holds more than tensors and plain containers: unpickling it could run code, so it is refused."""


@dataclass(frozen=True)
class CheckpointFiles:
    root: Path
    config: Path
    weights: Path
    cmvn: Path
    tokenizer: Path

    def checksums(self) -> dict[str, str]:
        return {p.name: sha256_file(p) for p in (self.config, self.weights, self.cmvn, self.tokenizer)}

    def config_dict(self) -> dict:
        return yaml.safe_load(self.config.read_text())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(model: str) -> Path:
    """A local directory as is; anything else is taken as a hub id and downloaded (where a hub is reachable)."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{model} is a file; expected {HUB_HINT}")
        return path
    if model.startswith((".", "/", "~")) or os.sep in model.strip("/").split("/", 1)[-1]:
        raise CheckpointError(f"model dir {model} does not exist")
    return _download_from_hub(model)


def _download_from_hub(model_id: str) -> Path:
    errors = []
    try:
        from modelscope.hub.snapshot_download import snapshot_download as ms_download

        return Path(ms_download(model_id))
    except Exception as exc:  # noqa: BLE001 -- any failure: try the next hub, report both
        errors.append(f"ModelScope: {exc}")
    try:
        from huggingface_hub import snapshot_download as hf_download

        return Path(hf_download(model_id))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"Hugging Face: {exc}")
    raise CheckpointError(
        f"{model_id} is not a local directory and could not be downloaded ({'; '.join(errors)[:400]})"
    )


def find_checkpoint_files(root: Path) -> CheckpointFiles:
    """Check that a dir holds what funasr needs to build SenseVoiceSmall, with one message listing what is missing."""
    config = root / "config.yaml"
    weights = root / "model.pt"
    cmvn = root / "am.mvn"
    tokenizer = _tokenizer_path(root)
    missing = [p.name for p in (config, weights, cmvn) if not p.is_file()]
    if tokenizer is None:
        missing.append("the sentencepiece tokenizer (*.bpe.model)")
    if missing:
        raise CheckpointError(f"incomplete checkpoint dir {root}: missing {', '.join(missing)}")
    try:
        conf = yaml.safe_load(config.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{config} is not valid YAML: {exc}") from exc
    if not isinstance(conf, dict) or conf.get("model") != "SenseVoiceSmall":
        raise CheckpointError(
            f"{config}: model is {conf.get('model') if isinstance(conf, dict) else None!r}, "
            "expected SenseVoiceSmall"
        )
    return CheckpointFiles(root, config, weights, cmvn, tokenizer)


def _tokenizer_path(root: Path) -> Path | None:
    meta = root / "configuration.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text())["file_path_metas"]["tokenizer_conf"]["bpemodel"]
            if (root / name).is_file():
                return root / name
        except (KeyError, TypeError, json.JSONDecodeError):
            pass
    candidates = sorted(root.glob("*.bpe.model"))
    return candidates[0] if candidates else None


def load_funasr_model(files: CheckpointFiles):
    """Build the model with funasr's AutoModel (its own classes, config and weight loading) on the CPU.

    Returns ``(auto_model, torch_model)``; the torch model is in eval mode.
    """
    state = _read_state_dict(files.weights)
    with quiet_funasr():
        from funasr import AutoModel

    try:
        with quiet_funasr():
            auto = AutoModel(
                model=str(files.root),
                device="cpu",
                disable_update=True,
                disable_pbar=True,
                disable_log=True,
                frontend_conf={"dither": 0.0},
                tokenizer_conf={"bpemodel": str(files.tokenizer)},
            )
    except Exception as exc:  # noqa: BLE001 -- funasr raises many kinds; one clear message is what users need
        raise CheckpointError(f"funasr could not build the model from {files.root}: {exc}") from exc
    model = auto.model
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise CheckpointError(
            f"{files.weights} does not match config.yaml: {len(missing)} parameters missing (e.g. {missing[0]})"
        )
    model.eval()
    return auto, model


@contextlib.contextmanager
def quiet_funasr():
    """funasr prints banners to stdout and logs every loading step on the root logger; keep progress readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _read_state_dict(weights: Path) -> dict:
    """funasr logs and carries on with random weights when model.pt cannot be read; fail loudly instead.

    Only tensors and plain containers are unpickled (``weights_only=True``): a checkpoint is data from elsewhere, and
    a full pickle runs whatever code it names while it loads. One that needs more is refused before anything of it
    runs (UnsafeCheckpointError); re-save it with ``torch.save(model.state_dict(), "model.pt")``."""
    import pickle

    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if (
            "global" not in reason.lower() and "class" not in reason.lower()
        ):  # e.g. "Unsupported operand": garbage
            raise CheckpointError(f"{weights} is corrupt or not a PyTorch checkpoint ({reason})") from exc
        raise UnsafeCheckpointError(
            f"{weights} needs more than tensors to load ({reason}); refusing to unpickle it, since that could run "
            "code: re-save it as a plain state dict (torch.save(model.state_dict(), 'model.pt'))"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"{weights} is corrupt or not a PyTorch checkpoint ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]})"
        ) from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and key in state:
            state = state[key]
    if not isinstance(state, dict) or not any(isinstance(k, str) and k.startswith("encoder.") for k in state):
        raise CheckpointError(f"{weights} holds no SenseVoice encoder weights")
    return state


def _unpickler_reason(exc: Exception) -> str:
    """The one useful line of torch's multi-paragraph "Weights only load failed" message."""
    text = " ".join(str(exc).split())
    m = re.search(r"WeightsUnpickler error: (.+?)(?: Please use| Check the documentation|$)", text)
    reason = (m.group(1) if m else text).strip().rstrip(".")
    return reason[:200]
