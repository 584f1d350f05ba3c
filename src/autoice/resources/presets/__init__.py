"""Training presets (YAML)."""
