"""OneRoster 1.1/1.2 CSV (bulk and delta): roster -> learners and guardian invitations; records via the API."""

from connectors.oneroster import connector  # noqa: F401  (register the connector kind)
