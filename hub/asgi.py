"""ASGI entry point for uvicorn/gunicorn: ``hub.asgi:app``."""

from hub.app import create_app

# The one process-wide app of a server: its startup heap is frozen (hub.app.freeze_startup_heap).
app = create_app(freeze_heap_at_startup=True)
