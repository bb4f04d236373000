"""Transports: how the engine reaches a host (local, SSH, NATS listener)."""
