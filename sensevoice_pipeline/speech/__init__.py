"""Speech in, rich transcriptions out: audio decoding, voice activity, the acoustic frontend, the encoder
session, CTC decoding, the language table and the rich-tag parser. No I/O beyond reading audio; no Triton."""
