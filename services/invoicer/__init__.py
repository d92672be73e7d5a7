"""The invoicer: one WHMCS invoice per (client, period), priced from the collected usage."""
