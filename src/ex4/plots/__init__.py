"""Figures drawn from stored results only: nothing here trains or imports training code."""
