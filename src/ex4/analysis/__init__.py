"""Analyses computed from models and results: linear-region bounds and counts, tables."""
