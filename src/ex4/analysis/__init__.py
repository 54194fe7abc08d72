"""Pure functions over stored results: rankings, summaries and bounds for tables and prose."""
