"""The 1EdTech Host API: Open Badges 3.0 §6 and CLR 2.0 §6 (``/ims/ob/v3p0``, ``/ims/clr/v2p0``).

A thin REST binding over what the hub already does: credentials are exported and imported by
``hub.credentials``, profile statements are entries of the ``profile`` section, and every call is
decided by the family's live grants through ``hub.grants.enforce.ProviderAccess`` — the same gate
as the GraphQL API — with the 1EdTech scopes standing for section scopes
(``consent.sections.IMS_SCOPES``).
"""
