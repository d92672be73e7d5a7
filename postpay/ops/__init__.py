"""Operator tools that span services: replay, dry-run and period status."""
