"""Facts and verdicts computed from stored results: numbers, booleans, small enums and named thresholds.

No sentences: the chapters (`index.qmd`, `report/*.qmd`) word what the verdicts mean. Analysis reads results and
models; it never trains and never imports `ex4.experiments`.
"""
