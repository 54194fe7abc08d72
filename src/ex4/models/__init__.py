"""Model definitions (plain nn.Modules; stored weights are their state dicts)."""
