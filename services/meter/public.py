"""What postpay may use of the meter (the only module of it postpay/ imports): its settings, for the
demo that runs it in-process. The meter's records reach the usage collector as events."""

from __future__ import annotations

from services.meter.settings import MeterSettings
from services.meter.store import tables

__all__ = ["MeterSettings", "tables"]
