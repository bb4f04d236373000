#!/usr/bin/env bash
# Installs everything hlplay's lab, tests and benchmarks need on a fresh
# Debian machine: system packages (Nix, OpenSSH server, git) and a virtualenv
# with hlplay and its dev extra. Safe to run again; it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${HLPLAY_VENV:-.venv}
PY=${PYTHON:-python3}

need_pkgs=()
command -v nix-build >/dev/null 2>&1 || need_pkgs+=(nix-bin)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
command -v ssh-keygen >/dev/null 2>&1 || need_pkgs+=(openssh-client)
# become over SSH is tested with a real sudo
command -v sudo >/dev/null 2>&1 || need_pkgs+=(sudo)
command -v "$PY" >/dev/null 2>&1 || need_pkgs+=(python3)
"$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv python3-pip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "bootstrap: installing ${need_pkgs[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${need_pkgs[*]}" >&2
  fi
fi
# sshd refuses to start without its privilege-separation directory
if [ ! -d /run/sshd ]; then
  if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; else sudo -n mkdir -p /run/sshd 2>/dev/null || true; fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.hlplay-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
