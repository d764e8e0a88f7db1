"""SenseVoice speech analytics: the library behind the DAGs, the Triton models and the `svp` CLI.

Where things live (docs/architecture.md has the flow and the rules each part keeps):
  speech/     audio in, rich transcriptions out: decode, VAD, frontend, encoder, CTC decoder, languages, tags
  serving/    Triton: repository layout, the python models' code, a local server, the client, one recording's path
  lake/       storage roots, files, a day's partition, table schemas and rollups, the catalog, leases
  jobs/       the daily job: plan, transcribe, publish one date
  warehouse/  DuckDB views over the lake, the canned queries, their tables and charts
  releases/   model versions: stage, canary, promote, roll back, retire, and the release orchestrator
  ui/         the `svp` command, the Airflow page, Try a clip
  demo/       `svp demo`: a sample day through a throwaway local Airflow
  provider/   the Airflow provider: Triton connection, hooks, the partition sensor
  settings.py one configuration object; constants.py shared numbers; errors.py one error hierarchy;
  resources.py where shipped files (VAD model, fixture model, DAGs, repository template) are
"""

__version__ = "0.1.0"
