"""What postpay may use of the meter (the only module of it postpay/ imports): its settings, and the
meter of its definition for the demo, which runs it in-process and sweeps it by hand. The meter's
records reach the usage collector as events."""

from __future__ import annotations

from services.meter.service import meter_of
from services.meter.settings import MeterSettings
from services.meter.store import tables

__all__ = ["MeterSettings", "meter_of", "tables"]
