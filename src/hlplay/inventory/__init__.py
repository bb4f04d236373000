"""Inventory: hosts, tiers, roles and groups, and what a selection compiles to."""
