"""`svp demo`: a sample day of calls and a throwaway local Airflow that runs the DAG once, end to end."""
