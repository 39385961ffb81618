"""JSON-LD contexts from a local directory, each pinned by SHA-256; nothing is fetched.

A JSON-LD processor dereferences every ``@context`` URL. Fetching them at run time would let
whoever serves (or intercepts) a context change what a signed credential *means* without
touching its signature (VC Data Integrity 1.0 §6.1 "Data Integrity and JSON-LD contexts":
implementations should cache or pin well-known contexts). So the loader serves only URLs that
are both in ``context-pins.json`` (shipped with the code) and in the directory's
``contexts-index.json`` (URL -> file), and only when the file's SHA-256 equals the pin.
Anything else raises ``ContextError``: unknown URL, missing file, hash mismatch.

``canonize`` turns a JSON-LD document into RDFC-1.0 (URDNA2015) canonical N-Quads with this
loader, in "safe mode": a property that the contexts do not define (and so would silently drop
from the signed RDF) is an error, as VC Data Integrity 1.0 §4.4 / eddsa-rdfc-2022 §3.3.1
require of JSON-LD based cryptosuites.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from pyld import jsonld
from pyld.context_resolver import ContextResolver

PINS_FILE = Path(__file__).with_name("context-pins.json")
INDEX_NAME = "contexts-index.json"


class ContextError(Exception):
    """A context could not be loaded safely (unknown, missing, or not the pinned bytes)."""


class CanonicalizationError(Exception):
    """The document is not processable JSON-LD under the pinned contexts."""


@cache
def pinned_hashes() -> dict[str, str]:
    return dict(json.loads(PINS_FILE.read_text()))


@dataclass
class ContextLoader:
    """A pyld ``documentLoader`` over one directory of pinned contexts."""

    directory: Path
    pins: dict[str, str] = field(default_factory=pinned_hashes)
    _index: dict[str, str] | None = field(default=None, init=False, repr=False)
    _documents: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def _load_index(self) -> dict[str, str]:
        if self._index is None:
            path = self.directory / INDEX_NAME
            try:
                index = json.loads(path.read_text())
            except FileNotFoundError as exc:
                raise ContextError(f"no {INDEX_NAME} in the JSON-LD contexts directory {self.directory}") from exc
            except (OSError, ValueError) as exc:
                raise ContextError(f"unreadable {path}: {exc}") from exc
            if not isinstance(index, dict):
                raise ContextError(f"{path} must map context URLs to file names")
            self._index = {str(k): str(v) for k, v in index.items()}
        return self._index

    def document(self, url: str) -> Any:
        """The parsed context at ``url``, or ``ContextError``."""
        if url in self._documents:
            return self._documents[url]
        pin = self.pins.get(url)
        if pin is None:
            raise ContextError(f"JSON-LD context {url!r} is not pinned; refusing to load it")
        name = self._load_index().get(url)
        if name is None:
            raise ContextError(f"JSON-LD context {url!r} is not in {self.directory / INDEX_NAME}")
        path = (self.directory / name).resolve()
        if self.directory.resolve() not in path.parents:
            raise ContextError(f"{INDEX_NAME} points {url!r} outside the contexts directory")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ContextError(f"JSON-LD context {url!r}: cannot read {path}: {exc}") from exc
        digest = hashlib.sha256(raw).hexdigest()
        if digest != pin:
            raise ContextError(f"JSON-LD context {url!r}: {path.name} has SHA-256 {digest}, pinned {pin}")
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise ContextError(f"JSON-LD context {url!r} is not JSON: {exc}") from exc
        self._documents[url] = document
        return document

    def __call__(self, url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        # pyld's documentLoader protocol (RemoteDocument).
        return {"contextUrl": None, "documentUrl": url, "document": self.document(url)}

    def options(self) -> dict[str, Any]:
        # A resolver cache per loader: pyld's module-level cache would otherwise serve a context
        # that another loader (another directory) resolved earlier.
        return {"documentLoader": self, "contextResolver": ContextResolver(LRUCache(maxsize=64), self)}


def _refuse_dropped(term: str | None) -> None:
    raise CanonicalizationError(f"property {term!r} is not defined by the credential's @context")


def _refuse_relative_types(node: Any) -> None:
    # Safe mode also rejects a type the contexts do not define (it would become a relative IRI).
    if isinstance(node, list):
        for item in node:
            _refuse_relative_types(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "@type" and not (isinstance(value, dict)):
                for t in value if isinstance(value, list) else [value]:
                    if isinstance(t, str) and ":" not in t and not t.startswith("@"):
                        raise CanonicalizationError(f"type {t!r} is not defined by the credential's @context")
            elif key != "@value":
                _refuse_relative_types(value)


def canonize(document: dict[str, Any], loader: ContextLoader) -> str:
    """RDFC-1.0 canonical N-Quads of ``document`` (VC DI EdDSA §3.3.3 / §3.3.4 transformation)."""
    try:
        # Safe mode first: expansion reports every term it would drop.
        expanded = jsonld.expand(document, loader.options(), on_property_dropped=_refuse_dropped)
        _refuse_relative_types(expanded)
        result = jsonld.normalize(
            document, {**loader.options(), "algorithm": "URDNA2015", "format": "application/n-quads"}
        )
    except ContextError:
        raise
    except CanonicalizationError:
        raise
    except jsonld.JsonLdError as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ContextError | CanonicalizationError):
                raise cause from exc
            cause = cause.__cause__ or getattr(cause, "cause", None)
        raise CanonicalizationError(f"not valid JSON-LD: {exc.args[0] if exc.args else exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CanonicalizationError(f"not valid JSON-LD: {exc}") from exc
    if not isinstance(result, str):
        raise CanonicalizationError("canonicalisation produced no N-Quads")
    return result
