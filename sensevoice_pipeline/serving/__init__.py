"""Triton: the model repository's layout and versions, the Python models' implementations, a local CPU server
process, and the gRPC client the pipeline uses to call it."""
