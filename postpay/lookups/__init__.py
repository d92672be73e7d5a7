"""Read models for operators: what the CLI look-ups print and the console's pages show.

Each reads the services' databases through their ``public`` modules only, and the upstreams (WHMCS,
SolusVM 2) where a live answer is wanted; an upstream that fails is reported, never fatal.
"""
