"""The DuckDB warehouse over the lake: views, canned BI queries, and their terminal/PNG renderings."""
