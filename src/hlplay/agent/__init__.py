"""The listener agent that runs on each host."""
