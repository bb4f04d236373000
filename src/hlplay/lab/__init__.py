"""The built-in lab: a local NATS server, listener agents and an SSH host.

``hlplay lab up`` starts a whole fleet on one machine, driven by a lab
inventory (``inventory/lab``); ``down`` stops it by pid; ``status`` reports
each host's generation, revision and health.
"""
