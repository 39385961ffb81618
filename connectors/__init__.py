"""Sync jobs that contribute to Kinfolio through its public API (see README.md)."""
