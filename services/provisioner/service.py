"""The provisioner: TermsAccepted → SolusVM 2 user → UserProvisioned."""

from __future__ import annotations

import functools

from services.provisioner import handlers
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.store import tables
from shared.bus.topology import Subscription
from shared.dependencies import Dependencies
from shared.events.enrollment import TermsAccepted
from shared.service import ServiceDefinition

NAME = "provisioner"


def build(deps: Dependencies) -> ServiceDefinition:
    settings = deps.settings(ProvisionerSettings)
    return ServiceDefinition(
        name=NAME,
        tables=tables,
        subscriptions=[
            Subscription(
                NAME,
                "provision_user",
                (TermsAccepted,),
                functools.partial(handlers.provision_user, solusvm=deps.solusvm, settings=settings),
            ),
        ],
    )
