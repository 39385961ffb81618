"""xAPI 1.0.3: statements from files, from any LRS Statement API, and the hub's push endpoint."""

from connectors.xapi import files, lrs  # noqa: F401  (register the connector kinds)
