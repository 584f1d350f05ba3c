"""Command-line interface: one module per command, composed lazily in :mod:`autoice.cli.main`."""
