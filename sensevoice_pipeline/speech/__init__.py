"""Speech in, model inputs and rich text out: audio decoding, voice activity, the acoustic frontend, the encoder
session, CTC decoding, the language table and the rich-tag parser. No Triton, no storage: the building blocks that
serving/ assembles into one model version's pipeline (serving/transcriber.py)."""
