"""The scheduled jobs, each one orchestration over lake/, serving/ and warehouse/: `daily.py` plans, transcribes and
publishes one date (the daily DAG and `svp run` call its functions). The release orchestrator is releases/release.py."""
