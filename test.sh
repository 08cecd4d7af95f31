#!/usr/bin/env bash
# The test command. It first sets up what the tests need on this machine: a single-node Slurm for the
# sweep tests (tests/setup/slurm.sh: Debian's slurm-wlm and munge, installed if missing and started
# unless running) and Debian's chromium for the page tests (tests/setup/chromium.sh), and tmux for the terminal
# tests (tests/setup/terminal.sh); they need root or sudo. Then it runs every test. Extra arguments go to dotnet test.
set -euo pipefail
cd "$(dirname "$0")"
bash tests/setup/slurm.sh
bash tests/setup/chromium.sh
bash tests/setup/terminal.sh
dotnet test vlsm.sln -c Release "$@"
