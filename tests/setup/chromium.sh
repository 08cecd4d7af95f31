#!/usr/bin/env bash
# Debian's chromium for the page tests (tests/Vlsm.Tests/ServePageTests.cs): Playwright drives it
# at /usr/bin/chromium, since Playwright's own browser download cannot run here. Installs the
# package if it is missing; a few minutes on a fresh Debian 12 machine, nothing when present.
# Needs root (or sudo).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing chromium (Debian package) for the page tests"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
dpkg-query -W -f="setup: chromium \${Version}\n" chromium
