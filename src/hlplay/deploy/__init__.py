"""Host-side deploy code that runs through a command runner, wherever it runs.

``contract`` (the executor interface and its context), ``nix`` (the Nix
pipeline, the default), ``noop`` (changes nothing), ``facts`` (the one fact
producer) and ``harness`` (timeouts, outcomes, confirm and reject: the one
place a deploy action is run for the listener, SSH and local hosts).
"""
