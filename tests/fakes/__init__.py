"""In-memory fakes of postpay's ports (WHMCS, SolusVM 2, the mailer, the clock, the bus publisher), and
``ServiceUnderTest``, which runs one real service on them and in-memory SQLite: for fast handler tests.
``tests/unit/test_fakes_match_adapters.py`` keeps each fake's methods in step with the real adapter's."""
