"""Model versions for platform teams: stage, canary, promote, roll back and retire on a running Triton."""
