"""Roster imports: learners created or matched by a provider's roster, and guardian invitations."""
