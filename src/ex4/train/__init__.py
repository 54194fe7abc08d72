"""Training loops and feature extraction: from arrays and models to fitted weights and predictions."""
