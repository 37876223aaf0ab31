#!/usr/bin/env bash
# Installs the controller as a systemd service (as root): the package into a virtualenv at
# /opt/ryu_dove/venv (not editable), the unit, and /etc/default/dove-controller and a policy
# if there are none yet. Then enables and starts it where systemd runs.
#   bash scripts/install-service.sh [POLICY.yaml]
# Safe to run again: the package is reinstalled, settings and policy are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/opt/ryu_dove
policy_src=${1:-policies/example.yaml}

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then  # a minimal Debian has no venv
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
"$prefix/venv/bin/pip" install -q .
mkdir -p "$prefix" /etc/ryu_dove
cp -r docs "$prefix/"
install -m 0644 etc/dove-controller.service /etc/systemd/system/dove-controller.service
[ -e /etc/default/dove-controller ] || install -m 0644 etc/dove-controller.default \
  /etc/default/dove-controller
[ -e /etc/ryu_dove/policy.yaml ] || install -m 0644 "$policy_src" /etc/ryu_dove/policy.yaml
"$prefix/venv/bin/dovectl" check /etc/ryu_dove/policy.yaml
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable dove-controller
  # shellcheck disable=SC1091
  . /etc/default/dove-controller
  if [[ " $DOVE_ARGS " == *" --plaintext "* ]] || [ -e /etc/ryu_dove/controller-privkey.pem ]; then
    systemctl restart dove-controller
    echo "install-service: dove-controller started (journalctl -u dove-controller)"
  else
    echo "install-service: enabled, not started: put the TLS files named in" \
         "/etc/default/dove-controller in place (docs/security.md), then" \
         "systemctl start dove-controller"
  fi
else
  echo "install-service: installed; systemd is not running here, start it with" \
       "systemctl start dove-controller where it is"
fi
