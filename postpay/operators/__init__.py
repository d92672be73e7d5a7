"""Operators of postpay: their accounts, their console sessions, and the audit log of what they did.

The tables are the console's own (``console_*``, migrated by ``postpay db upgrade`` like a service's);
no service reads them.
"""
