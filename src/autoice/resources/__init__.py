"""Package data: scaling statistics and presets."""
