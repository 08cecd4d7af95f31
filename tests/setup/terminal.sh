#!/usr/bin/env bash
# Terminal tools for the tests that drive vlsm on a terminal: tmux (Ctrl-C during train restores the
# cursor, RunResumeTests) and script from bsdutils (the demo's live view in an 80x24 pseudo-terminal,
# DemoProgressTests; bsdutils is essential, so it is only checked). tmux is not in a minimal Debian 12;
# installs it if missing. Needs root (or sudo).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v tmux >/dev/null; then
  echo "setup: installing tmux (Debian package) for the terminal tests"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tmux >/dev/null
fi
command -v script >/dev/null || { echo "setup: script (bsdutils) is missing; install bsdutils" >&2; exit 1; }
dpkg-query -W -f="setup: tmux \${Version}\n" tmux
