"""What ``./scripts/test`` does before pytest: find the RabbitMQ and PostgreSQL the tests use.

Three situations, decided per server from probed facts (``decisions``, pure and unit-tested):

- it already runs at the default address and lets the tests in: use it;
- a Docker engine answers: leave ``POSTPAY_TEST_*`` unset so the suite starts testcontainers;
- root on Debian: install what is missing, start it (left running, and said so) and, for a PostgreSQL
  this script installed, let the tests in.

A server this script did not install is never reconfigured unless ``POSTPAY_TEST_CONFIGURE_POSTGRES=1``
asks for it, and nothing is ever stopped. ``machine`` holds the real probes and actions.
"""
