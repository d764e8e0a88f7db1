"""Helpers shared by the tests: plain functions and classes, no fixtures (those are in the conftest.py files).

paths (the repository's files), fixture_model (its clips and expected texts), audio (generated speech, days of clips),
svp (the command line as a subprocess), triton (exports, a served repository, its admin key and versions), traffic
(steady requests against Tritons), lake (reading a lake as the tests compare it, a reader process), releases,
model_configs, fault_models (the faulty encoder), page (the plugin page's small lake), airflow (the plugin's
api-server), s3 (moto), services (PostgreSQL, Redis), compose and dockerfile (the deployment files), stack (the
production stack as processes)."""
