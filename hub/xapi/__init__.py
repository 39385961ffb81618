"""The hub's LRS-compatible xAPI push endpoint (connectors issue)."""
