#!/usr/bin/env bash
# The demo: a 3-hypervisor lab with two tenants from policies/example.yaml and labs/demo.yaml,
# then who-reaches-whom. The lab stays up to explore; `.venv/bin/dove-lab down` removes it.
# Options: --no-controller (the plain-OVS baseline), --down (remove the lab at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mode=() down=0
for arg in "$@"; do
  case "$arg" in
    --no-controller) mode=(--no-controller) ;;
    --down) down=1 ;;
    *) echo "demo: unknown option $arg (--no-controller, --down)" >&2; exit 2 ;;
  esac
done
lab=.venv/bin/dove-lab
$lab down >/dev/null
$lab up --topology labs/demo.yaml --policy policies/example.yaml "${mode[@]}"
echo
$lab matrix
echo
if [ "$down" = 1 ]; then $lab down; else
  echo "explore: $lab status | $lab exec vm1 -- ping 198.51.100.11 | $lab down"; fi
