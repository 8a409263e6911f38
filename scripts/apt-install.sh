#!/usr/bin/env bash
# Installs Debian packages for the test scripts: apt-get (through sudo when not root), with no
# recommended extras. Fails with a clear message, naming the packages, when it cannot.
#
#   scripts/apt-install.sh WHO PACKAGE...     (WHO prefixes the messages, e.g. "test.sh")
set -euo pipefail

who=$1
shift
have() { command -v "$1" >/dev/null 2>&1; }

echo "$who: installing $*" >&2
if ! have apt-get; then
    echo "$who: apt-get is not available; install $* by hand" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif have sudo; then
    as_root=(sudo)
else
    echo "$who: not root and no sudo; install $* by hand" >&2
    exit 1
fi
# (the odd expansion: an empty array under `set -u` on bash < 4.4)
if ! ${as_root[@]+"${as_root[@]}"} apt-get update; then
    echo "$who: apt-get update failed; install $* by hand" >&2
    exit 1
fi
if ! ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
    echo "$who: apt-get install $* failed; install it by hand" >&2
    exit 1
fi
