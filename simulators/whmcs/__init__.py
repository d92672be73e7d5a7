"""A faithful simulator of the WHMCS External API (``includes/api.php``) for tests and demos."""

from simulators.whmcs.app import create_app

__all__ = ["create_app"]
