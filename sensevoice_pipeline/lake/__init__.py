"""The lake: storage roots (local or s3://), a day's raw partition, the table schemas, the DuckLake catalog,
date leases, and the daily job that plans, transcribes and publishes one date."""
