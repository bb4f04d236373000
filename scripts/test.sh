#!/usr/bin/env bash
# Command 2 of README: install what the tests need, then run them all.
# Real parts only: a real nats-server, a real sshd and real Nix. Under CI=true
# a test whose part is missing fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
