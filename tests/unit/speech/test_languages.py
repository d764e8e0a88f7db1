"""speech/languages.py: the query ids of SenseVoiceSmall's language and text-normalisation prompts."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from sensevoice_pipeline.errors import ConfigurationError
from sensevoice_pipeline.speech.languages import (
    EVENT_EMOTION_QUERY_IDS,
    LANGUAGE_IDS,
    LANGUAGES,
    TEXTNORM_IDS,
    UnknownLanguageError,
    language_id,
    textnorm_id,
)


@pytest.mark.parametrize(
    "hint, expected",
    [("en", 4), ("EN", 4), (" yue\n", 7), ("ko", 12), ("nospeech", 13), ("auto", 0), ("", 0), (None, 0)],
)
def test_a_hint_is_read_case_and_space_insensitively_and_empty_means_auto(hint, expected):
    assert language_id(hint) == expected


@pytest.mark.parametrize("hint", ["english", "de", "en-US", "zh_cn"])
def test_an_unknown_hint_is_refused_with_the_valid_ones(hint):
    with pytest.raises(UnknownLanguageError) as refused:
        language_id(hint)
    assert (
        str(refused.value)
        == f"unknown language {hint!r}: expected one of auto, zh, en, yue, ja, ko, nospeech"
    )
    assert isinstance(refused.value, ConfigurationError) and isinstance(refused.value, ValueError)


def test_itn_selects_withitn_and_its_absence_woitn():
    assert (textnorm_id(True), textnorm_id(False)) == (14, 15)


def test_every_query_id_is_its_own_row_of_the_16_row_query_embedding():
    """funasr's embedding has 7 + len(lid_dict) + len(textnorm_dict) rows; one id for two prompts would make the
    encoder hear one where the other was meant."""
    ids = [*LANGUAGE_IDS.values(), *TEXTNORM_IDS.values(), *EVENT_EMOTION_QUERY_IDS]
    rows = 7 + len(LANGUAGE_IDS) + len(TEXTNORM_IDS)
    assert len(set(ids)) == len(ids) and all(0 <= i < rows for i in ids) and rows == 16
    assert LANGUAGES == tuple(LANGUAGE_IDS) and LANGUAGES[0] == "auto"  # the form's first, default choice


def test_the_ids_are_funasrs_own():
    """The ids are the `sensevoice_encoder` contract: compared with funasr's SenseVoiceSmall source (read, not
    imported: that would import torch)."""
    spec = importlib.util.find_spec("funasr")
    if spec is None:
        pytest.skip("funasr (the export extra) is not installed")
    source = Path(spec.submodule_search_locations[0]) / "models" / "sense_voice" / "model.py"
    found = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in ("lid_dict", "textnorm_dict"):
                    found.setdefault(target.attr, ast.literal_eval(node.value))
    assert found == {"lid_dict": LANGUAGE_IDS, "textnorm_dict": TEXTNORM_IDS}
