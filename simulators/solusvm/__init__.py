"""A faithful SolusVM 2 API simulator for tests and demos (see docs: reference/solusvm2-api.md)."""

from simulators.solusvm.app import create_app
from simulators.solusvm.state import SimState

__all__ = ["SimState", "create_app"]
