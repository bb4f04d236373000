"""NATS credentials: NKey seeds and the nats-server authorization config."""
