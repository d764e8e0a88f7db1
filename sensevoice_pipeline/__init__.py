"""SenseVoice speech analytics: the library behind the DAGs, the Triton models and the `svp` CLI.

Where things live:
  frontend.py   waveform -> fbank + LFR + CMVN features (what the encoder eats)
  decoder.py    CTC greedy decoding and sentencepiece detokenisation
  tags.py       rich-tag parsing (<|en|><|ANGRY|>...) into columns, and text renderers
  languages.py  the language / text-normalisation ids the model was trained with
  repository.py the Triton model repository: layout, versions, lint
  encoder.py    in-process onnxruntime session for an exported encoder
  server.py     a local CPU tritonserver process (PyPI build)
  client.py     async gRPC client for the `sensevoice` model
  audio.py      decode / resample / channel handling
  cli.py        the `svp` command
"""

__version__ = "0.1.0"
