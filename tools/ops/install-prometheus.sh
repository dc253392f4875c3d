#!/usr/bin/env bash
# Installs promtool, prometheus, amtool and Alertmanager from Debian's packages (prometheus,
# prometheus-alertmanager), for the tests that check deploy/prometheus and deploy/alertmanager
# (`promtool check rules|config`, `promtool test rules`, `amtool check-config`).
# Idempotent (does nothing when promtool and amtool are there) and never fails the build: when it
# cannot install (not root, no apt-get, no registry) it says why, and those tests skip with the reason.
set -uo pipefail

skip() {
    echo "install-prometheus: not installing prometheus/prometheus-alertmanager: $*" >&2
    echo "install-prometheus: the promtool/amtool tests (tests/unit/test_prometheus_rules.py) will be skipped" >&2
    exit 0
}

if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
    echo "install-prometheus: promtool and amtool already installed ($(command -v promtool), $(command -v amtool))"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || skip "apt-get is not available (install promtool and amtool by hand)"
[ "$(id -u)" = 0 ] || skip "apt-get needs root (run: sudo apt-get install prometheus prometheus-alertmanager)"

export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing (a fresh container) or stale: refresh once, then install.
if ! apt-get install -y --no-install-recommends prometheus prometheus-alertmanager >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || skip "apt-get update failed (no package registry?)"
    apt-get install -y --no-install-recommends prometheus prometheus-alertmanager >/dev/null 2>&1 \
        || skip "apt-get install prometheus prometheus-alertmanager failed"
fi
command -v promtool >/dev/null 2>&1 || skip "promtool is still missing after the install"
echo "install-prometheus: installed $(promtool --version 2>&1 | head -1)"
