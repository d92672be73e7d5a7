"""The operator console: server-rendered pages over the same read models as the CLI look-ups.

Every page needs an operator session; every POST carries the session's CSRF token and a reason, and is
recorded in the audit log with who and why. A page is a router plus an entry in ``nav.PAGES``: the
held-invoices page (release / reject with a reason) is added the same way.
"""
