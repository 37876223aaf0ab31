#!/usr/bin/env bash
# Installs everything ryu_dove's demo and tests need on a fresh Debian 12 machine (as root):
# Debian's Open vSwitch and network tools, and a virtualenv at .venv with the project.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# dnsmasq-base and busybox: a DHCP server and client for the learning tests.
DEBS=(openvswitch-switch iproute2 iputils-ping ethtool nftables tcpdump iperf3 dnsmasq-base
      busybox)
need_apt=()
for tool in ovs-vswitchd:openvswitch-switch ovs-pki:openvswitch-common ip:iproute2 \
            ping:iputils-ping ethtool:ethtool nft:nftables \
            tcpdump:tcpdump iperf3:iperf3 dnsmasq:dnsmasq-base busybox:busybox; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool##*:}")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${need_apt[*]}" >&2; exit 1
  fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${DEBS[@]}" python3-venv >/dev/null
fi

# The project venv; reinstalled only when the packaging metadata changed.
stamp=.venv/.ryu_dove-setup
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv and installing ryu_dove with its dependencies"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
