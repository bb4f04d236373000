#!/usr/bin/env bash
# Command 1 of README: hlplay's main job, end to end, on the built-in lab.
#
# Starts a local fleet (a nats-server, six listener agents, an SSH host, all
# with Nix profiles of their own), deploys the configuration's pending change
# to the test tier with its closure diff and health gate, then makes a second
# change and deploys it too. KEEP_LAB=1 leaves the lab running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
INV=inventory/lab

step() { printf '\n\033[1m==> %s\033[0m\n\n' "$*"; }
finish() {
  if [ "${KEEP_LAB:-0}" = 1 ]; then
    echo "The lab is still up: hlplay lab status -i $INV; hlplay lab down -i $INV"
  else
    step "hlplay lab down -i $INV"
    hlplay lab down -i "$INV"
  fi
}

step "hlplay lab up --fresh -i $INV"
hlplay lab up --fresh -i "$INV"
trap finish EXIT

step "hlplay playbooks/deploy-all.yml -i $INV -l tier=test"
hlplay playbooks/deploy-all.yml -i "$INV" -l tier=test

step "A second change: hlplay lab bump postgresql-lite 15.6"
hlplay lab bump -i "$INV" postgresql-lite 15.6

step "hlplay playbooks/deploy-all.yml -i $INV -l tier=test   (again)"
hlplay playbooks/deploy-all.yml -i "$INV" -l tier=test

step "hlplay lab status -i $INV"
hlplay lab status -i "$INV"
