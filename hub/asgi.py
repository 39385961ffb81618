"""ASGI entry point for uvicorn/gunicorn: ``hub.asgi:app``."""

from hub.app import create_app

# The one process-wide app of a server: its startup heap is frozen and, on SQLite, the WAL is
# checkpointed in the background (create_app's server_process).
app = create_app(server_process=True)
