"""Triton: the model repository's layout and versions, one version's in-process pipeline (what the `sensevoice`
model runs), the Python models' implementations, a local CPU server process, the gRPC client, and the path of one
recording through the serving Triton (recordings.py)."""
