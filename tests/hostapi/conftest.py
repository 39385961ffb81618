"""Host API tests reuse the credential fixtures (contexts, kit, official examples)."""

from tests.credentials.conftest import (  # noqa: F401  (pytest fixtures)
    contexts_dir,
    cred_settings,
    credentials_app,
    credential_key_pem,
    examples_dir,
    kit,
    loader,
)
