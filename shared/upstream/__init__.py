"""The SolusVM 2 and WHMCS clients and their HTTP transport."""
