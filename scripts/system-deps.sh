#!/bin/sh
# Install the Debian packages reslab's data and tests use, if we can (root + apt) and
# they are missing. Anywhere else this only says what is missing; nothing fails here.
set -e
need=""
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need="$need dataset-fashion-mnist"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
else
    echo "note: not installing$need (needs root and apt); tests that need them are skipped"
fi
