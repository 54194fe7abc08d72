"""Network definitions (ResNet18 for Section 7, MLPs for Section 6) and where their weights come from."""
