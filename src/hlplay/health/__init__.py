"""Fleet health: facts against thresholds, revision drift, Prometheus and Alertmanager.

``hlplay health`` (``hlplay.cli.ops_cmd``) and the ``health``,
``http_check``, ``prometheus_targets`` and ``alertmanager_alerts`` modules
share this code; ``fleet.check_fleet`` is the whole check in one call.
"""
