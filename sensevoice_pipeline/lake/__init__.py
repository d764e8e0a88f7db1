"""The lake: storage roots (local or s3://), reading and writing files under them, a day's raw partition, the table
schemas and rollups, the DuckLake catalog and its commits, and date leases. The daily job that uses them is
jobs/daily.py."""
