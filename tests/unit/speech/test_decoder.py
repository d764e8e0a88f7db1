import numpy as np

from sensevoice_pipeline.speech.decoder import CtcDecoder, Tokenizer, ctc_greedy_ids

TOKENIZER = "export/reference_model/SYNTHETIC_chn_jpn_yue_eng_ko_spectok.bpe.model"


def test_collapses_repeats_and_drops_blanks():
    assert ctc_greedy_ids(np.array([0, 5, 5, 0, 5, 7, 7, 0]), 8) == [5, 5, 7]


def test_never_decodes_past_the_utterance_length():
    # frames after the length are padding: whatever they hold must not appear
    assert ctc_greedy_ids(np.array([3, 3, 9, 9, 9]), 2) == [3]
    assert ctc_greedy_ids(np.array([3, 3]), 0) == []


def test_repeats_are_collapsed_per_utterance_not_across_the_batch():
    tokenizer = Tokenizer(TOKENIZER)
    decoder = CtcDecoder(tokenizer)
    zh, angry = tokenizer.piece_id("<|zh|>"), tokenizer.piece_id("<|ANGRY|>")
    ids = np.array([[zh, angry, 0], [angry, angry, 0]])
    # a batch-wide unique_consecutive would merge the second row's first token into the first row's last
    texts = decoder.decode_batch(ids, [2, 2])
    assert texts == ["<|zh|><|ANGRY|>", "<|ANGRY|>"]


def test_tags_are_looked_up_by_piece():
    tokenizer = Tokenizer(TOKENIZER)
    assert tokenizer.piece_id("<|en|>") == 24885
    assert tokenizer.piece_id("<|withitn|>") == 25016
    assert tokenizer.piece_id("<|NOT_A_TAG|>") == -1
