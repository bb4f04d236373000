"""The playbook engine: plays, batches, strategies, handlers, over transports."""
