"""What people use: the `svp` command line, the Airflow page and its Try-a-clip form."""
