"""OneRoster 1.1/1.2 CSV (not yet implemented; see connectors/README.md)."""
