"""``kinfolio frameworks import FILE|URL`` and ``kinfolio frameworks list`` against the test database."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.hub.test_cli import kinfolio  # noqa: F401  (fixture)

pytestmark = pytest.mark.samples


@pytest.fixture
def case_schemas(monkeypatch, samples_dir):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KINFOLIO_CASE_SCHEMAS_DIR", str(samples_dir / "case" / "case-v1p1-json-schemas"))


@pytest.fixture
def package_server(samples_dir):  # type: ignore[no-untyped-def]
    """A local static server (port 0: any free one) serving the OpenSALT sample packages."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(samples_dir / "case" / "opensalt"))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_import_file_then_url_then_list(kinfolio, case_schemas, samples_dir, package_server):  # type: ignore[no-untyped-def]  # noqa: F811
    path = samples_dir / "case" / "opensalt" / "SmartLevelFramework.json"
    first = json.loads(kinfolio("frameworks", "import", str(path), "--json").output)
    assert (first["document"], first["items"]["created"], first["associations"]["created"]) == ("created", 14, 14)
    again = kinfolio("frameworks", "import", f"{package_server}/SmartLevelFramework.json").output
    assert "document unchanged" in again and "items 0 created, 0 updated, 14 unchanged, 0 removed" in again
    listed = [json.loads(line) for line in kinfolio("frameworks", "list").output.splitlines()]
    assert [(d["title"], d["items"], d["associations"]) for d in listed] == [("SmartLevel Test", 14, 14)]


def test_errors_are_one_clear_line(kinfolio, case_schemas, tmp_path, package_server, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    bad = tmp_path / "bad.json"
    bad.write_text('{"CFItems": []}')
    notjson = tmp_path / "notjson.json"
    notjson.write_text("CFDocument,title\n")
    for args, message in (
        ((str(tmp_path / "absent.json"),), "No such file"),
        ((str(notjson),), "not JSON"),
        ((str(bad),), "CFDocument: is missing"),
        ((f"{package_server}/absent.json",), "HTTP 404"),
    ):
        result = kinfolio("frameworks", "import", *args, ok=False)
        assert result.exit_code == 2 and message in result.output, result.output
    monkeypatch.delenv("KINFOLIO_CASE_SCHEMAS_DIR")
    from hub.config import get_settings

    get_settings.cache_clear()
    result = kinfolio("frameworks", "import", str(bad), ok=False)
    assert result.exit_code == 2 and "KINFOLIO_CASE_SCHEMAS_DIR is not set" in result.output
