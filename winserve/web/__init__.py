"""The web package: the only part of winserve that imports Flask."""

from winserve.web.app import create_app

__all__ = ["create_app"]
