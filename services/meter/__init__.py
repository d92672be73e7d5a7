"""The meter: polls SolusVM 2's documented lists and publishes when VMs start, stop, change plan and go."""
