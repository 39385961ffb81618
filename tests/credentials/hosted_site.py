"""An OB 2.0 issuer's site for hosted-assertion tests: a real HTTP server on loopback serving a
Profile, a BadgeClass and an Assertion at their ids, and a kit that allows fetching from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.credentials.service import CredentialKit, kit_from_settings
from tests.connectors.fakes import static_server

OB2 = "https://w3id.org/openbadges/v2"
JSON = "application/ld+json"


@dataclass
class Hosted:
    """An issuer's site: its Profile, one BadgeClass and one Assertion, each at its id."""

    base: str
    routes: dict[str, tuple[Any, ...]]
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base}/assertions/1"

    @property
    def issuer(self) -> str:
        return f"{self.base}/issuer"

    def serve(self, path: str, document: Any, status: int = 200, content_type: str = JSON,
              headers: dict[str, str] | None = None) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.routes[path] = (content_type, body, status, headers or {})

    def document(self, path: str) -> dict[str, Any]:
        return json.loads(self.routes[path][1])

    def assertion(self) -> dict[str, Any]:
        return self.document("/assertions/1")


def site(base: str, routes: dict[str, tuple[Any, ...]], seen: list[str]) -> Hosted:
    hosted = Hosted(base, routes, seen)
    hosted.serve("/issuer", {"@context": OB2, "type": "Profile", "id": hosted.issuer, "name": "Riverside Makers",
                             "url": f"{base}/", "email": "badges@riverside.example"})
    hosted.serve("/badges/robotics", {
        "@context": OB2, "type": "BadgeClass", "id": f"{base}/badges/robotics", "name": "Hosted Robotics",
        "description": "Built and programmed a robot.", "image": f"{base}/robotics.png",
        "criteria": {"narrative": "Finish the maze."}, "issuer": hosted.issuer})
    hosted.serve("/assertions/1", {
        "@context": OB2, "type": "Assertion", "id": hosted.url,
        "recipient": {"type": "email", "hashed": False, "identity": "kim@example.org"},
        "badge": f"{base}/badges/robotics", "verification": {"type": "HostedBadge"},
        "issuedOn": "2026-01-05T00:00:00+00:00"})
    return hosted


@contextmanager
def issuer_site() -> Iterator[Hosted]:
    routes: dict[str, tuple[Any, ...]] = {}
    seen: list[str] = []
    with static_server(routes, seen) as base:
        yield site(base, routes, seen)


def hosted_kit(kit: CredentialKit, tmp_path: Path, issuers: list[dict[str, Any]]) -> CredentialKit:
    path = tmp_path / "trusted-issuers.json"
    path.write_text(json.dumps({"issuers": issuers}))
    return kit_from_settings(kit.settings.model_copy(update={"trusted_issuers_file": path,
                                                             "hosted_allow_http_loopback": True}))
