#!/usr/bin/env bash
# Provisions a hypervisor: Open vSwitch and the project (scripts/setup.sh, as on one
# machine), joins it to the controller (dove-join, kernel datapath) and plugs the demo VMs
# the topology puts on it, as network namespaces (dove-lab plug-host).
#   provision-hypervisor.sh NAME TEP_IP CONTROLLER_IP TOPOLOGY POLICY [DOVE-JOIN ARGS...]
# Extra arguments go to dove-join (CI runs this inside the one-machine lab's hypervisor
# namespaces with --db unix:... --datapath-type netdev).
set -euo pipefail
name=$1 tep=$2 controller=$3 topology=$4 policy=$5
shift 5
# Vagrant uploads this script to /tmp and runs it there: the repository is /vagrant then.
repo=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$repo/scripts/setup.sh" ] || repo=/vagrant
cd "$repo"
bash scripts/setup.sh
db=unix:/var/run/openvswitch/db.sock
datapath=system
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --db) db=${args[i+1]:-$db} ;;
    --datapath-type) datapath=${args[i+1]:-$datapath} ;;
  esac
done
if [ "$datapath" = system ] && ! systemctl is-active --quiet openvswitch-switch 2>/dev/null; then
  systemctl enable --now openvswitch-switch
fi
.venv/bin/dove-join --hypervisor "$name" --tep-ip "$tep" --controller "$controller" \
  --datapath-type "$datapath" "$@"
.venv/bin/dove-lab plug-host --topology "$topology" --policy "$policy" --hypervisor "$name" \
  --prefix "${DOVE_VM_PREFIX:-dove-vm-}" \
  --db "$db"
echo "provision-hypervisor: $name joined (TEP $tep) and its demo VMs plugged"
