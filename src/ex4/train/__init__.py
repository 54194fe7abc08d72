"""Training code: the batched MLP engine (Section 6) and device selection shared with Section 7."""
