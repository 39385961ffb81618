"""What the server process does beyond serving requests."""

from __future__ import annotations

import gc

from hub.app import create_app


async def test_the_server_entry_point_freezes_its_startup_heap(settings, engine) -> None:  # type: ignore[no-untyped-def]
    assert gc.get_freeze_count() == 0
    app = create_app(settings, engine, freeze_heap_at_startup=True)
    try:
        async with app.router.lifespan_context(app):
            # Startup objects are out of the cyclic collector's reach; a full collection no longer walks them.
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_apps_built_in_a_shared_process_do_not_freeze(settings, engine) -> None:  # type: ignore[no-untyped-def]
    # Tests and tools build many apps in one process: frozen, each would stay in memory for good.
    app = create_app(settings, engine)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0

