"""The export step: SenseVoiceSmall checkpoint -> verified ONNX -> a new version in the Triton model repository.

The only code in the project that imports torch and funasr.

  checkpoint.py  find, check and load a checkpoint dir (or hub id) with funasr's own classes
  graph.py       the encoder graph that is exported (queries + encoder + CTC head + argmax)
  precision.py   fp32 -> int8 (CPU) / fp16 (GPU) conversions
  parity.py      onnxruntime vs PyTorch on a padded batch of mixed lengths
  pipeline.py    the whole step behind `svp export`
  micro.py       a micro SenseVoiceSmall checkpoint for tests and the demo
"""
