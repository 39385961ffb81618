"""The section catalogue, read from ``schemas/sections.yaml``.

Sections are data: code asks the catalogue whether a name is a section and whether it is
sensitive instead of hard-coding lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

import yaml


class Action(StrEnum):
    """What a provider may do with a section (the second half of a scope)."""

    CONTRIBUTE = "contribute"
    READ = "read"


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    sensitive: bool
    description: str
    # What may be granted on the section; ``profile.birthdate`` is read-only (nobody contributes it).
    actions: tuple[Action, ...] = (Action.CONTRIBUTE, Action.READ)


@cache
def catalogue() -> dict[str, Section]:
    raw = yaml.safe_load(resources.files("schemas").joinpath("sections.yaml").read_text("utf-8"))
    return {
        name: Section(
            name=name,
            sensitive=bool(spec["sensitive"]),
            description=spec["description"],
            actions=tuple(Action(a) for a in spec.get("actions", [a.value for a in Action])),
        )
        for name, spec in raw["sections"].items()
    }


class UnknownSection(ValueError):
    pass


def get_section(name: str) -> Section:
    try:
        return catalogue()[name]
    except KeyError:
        known = ", ".join(sorted(catalogue()))
        raise UnknownSection(f"unknown section {name!r}; known sections: {known}") from None


def scope_for(section: str, action: Action) -> str:
    """OAuth scope string for a section and action, e.g. ``badges:read``."""
    return f"{section}:{action.value}"


def all_scopes() -> list[str]:
    return sorted(scope_for(s.name, a) for s in catalogue().values() for a in s.actions)


# 1EdTech scope URIs (Open Badges 3.0 §6 "Open Badges API"; CLR 2.0 §6, the same four names under
# /spec/clr/v2p0/scope/: credential.readonly, credential.upsert, profile.readonly, profile.update —
# checked against the spec: there is no "clr.readonly"/"clr.upsert"; CLR 1.0's readonly/replace/
# delete scopes are not CLR 2.0's).
# Each is an alias of ONE Kinfolio section scope: granting it on the consent page creates exactly
# that section grant, so the family's consent is the same whatever vocabulary the app speaks.
OB_SCOPE_PREFIX = "https://purl.imsglobal.org/spec/ob/v3p0/scope/"
CLR_SCOPE_PREFIX = "https://purl.imsglobal.org/spec/clr/v2p0/scope/"
_IMS_SCOPE_NAMES: dict[str, tuple[str, Action]] = {
    "credential.readonly": ("badges", Action.READ),
    "credential.upsert": ("badges", Action.CONTRIBUTE),
    "profile.readonly": ("profile", Action.READ),
    "profile.update": ("profile", Action.CONTRIBUTE),
}
IMS_SCOPES: dict[str, tuple[str, Action]] = {
    prefix + name: target for prefix in (OB_SCOPE_PREFIX, CLR_SCOPE_PREFIX) for name, target in _IMS_SCOPE_NAMES.items()
}


# Scopes outside the consent catalogue, for public reference data (no learner data, so no family
# consent applies; the scope alone decides). Only operator-created client-credentials clients get
# them: dynamic registration and the consent page never offer them.
FRAMEWORKS_WRITE = "frameworks:write"
REFERENCE_SCOPES: dict[str, str] = {FRAMEWORKS_WRITE: "import CASE competency frameworks (importFramework)"}


def supported_scopes() -> list[str]:
    """Every scope a client may request: section scopes, their 1EdTech aliases, reference-data scopes."""
    return [*all_scopes(), *sorted(IMS_SCOPES), *sorted(REFERENCE_SCOPES)]


def ims_equivalents(scopes: frozenset[str], prefix: str) -> frozenset[str]:
    """The section scopes that a token's 1EdTech scopes under ``prefix`` stand for.

    Used by the Host API (``hub.hostapi``) to present an OB/CLR token to the consent decision,
    which speaks section scopes only; scopes of the other vocabulary do not carry over.
    """
    return frozenset(scope_for(*IMS_SCOPES[s]) for s in scopes if s.startswith(prefix) and s in IMS_SCOPES)


def check_action(section: Section, action: Action) -> None:
    """Raise ValueError when ``action`` cannot be granted on ``section`` (e.g. contributing a birthdate)."""
    if action not in section.actions:
        offered = ", ".join(a.value for a in section.actions)
        raise ValueError(f"section {section.name!r} offers only: {offered}")


def parse_scope(scope: str) -> tuple[Section, Action]:
    """Split ``<section>:<action>`` (or a 1EdTech scope URI naming one); raises
    ValueError/UnknownSection for anything else."""
    if scope in IMS_SCOPES:
        name, action = IMS_SCOPES[scope]
        return get_section(name), action
    section_name, sep, action = scope.partition(":")
    if not sep:
        raise ValueError(f"scope {scope!r} is not of the form <section>:<action>")
    section, parsed = get_section(section_name), Action(action)
    check_action(section, parsed)
    return section, parsed
