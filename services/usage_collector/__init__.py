"""The usage collector: one work item per customer per closed period, and its usage from SolusVM 2."""
