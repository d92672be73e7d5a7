"""``postpay demo``: the whole product in one process, on the embedded defaults.

The parts, one file each:

- ``scenario``  who signs up and how their VMs ran last month (pure data, deterministic);
- ``expected``  what each invoice must say, computed from the scenario alone (never by the invoicer);
- ``stack``     starting everything: both simulators, SMTP capture, the services and the signup web;
- ``journey``   signing customers up through the signup web app's real HTTP endpoints;
- ``month``     seeding last month in the SolusVM 2 simulator, closing it, reading the WHMCS invoices;
- ``showcase``  the ``--serve`` extras: a client-area panel preview and the captured mailbox;
- ``narration`` progress and the invoice tables, with rich.
"""
