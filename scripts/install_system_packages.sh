#!/usr/bin/env bash
# Install Debian packages the project needs (as root), or say how to.
set -euo pipefail
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
else
  echo "please install: $* (e.g. sudo apt-get install $*)" >&2
  exit 1
fi
