"""CASE competency frameworks: the ``case-package`` connector."""

from connectors.case import connector  # noqa: F401  (registers the kind)
