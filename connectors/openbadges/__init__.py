"""Open Badges: backpack exports, OB 2.0 signed assertions and OB 3.0 / CLR 2.0 credentials."""

from connectors.openbadges import connector  # noqa: F401  (register the connector kind)
