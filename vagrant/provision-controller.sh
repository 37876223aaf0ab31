#!/usr/bin/env bash
# Provisions the controller VM: the package and the systemd service, listening on the
# management address (plaintext on the lab's private network: docs/vagrant.md).
#   provision-controller.sh MGMT_IP POLICY
set -euo pipefail
mgmt_ip=$1 policy=$2
cd /vagrant
bash scripts/install-service.sh "$policy"
cat > /etc/default/dove-controller <<CONF
DOVE_POLICY=/etc/ryu_dove/policy.yaml
DOVE_ARGS=--listen $mgmt_ip --state-dir /var/lib/ryu_dove --plaintext
CONF
systemctl restart dove-controller
echo "provision-controller: dove-controller on $mgmt_ip (journalctl -u dove-controller)"
