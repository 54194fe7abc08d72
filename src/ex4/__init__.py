"""ex4: a reproducible build of the "Machine Learning Methods, Exercise 4" report."""

__version__ = "0.1.0"
