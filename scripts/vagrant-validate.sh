#!/usr/bin/env bash
# CI's Vagrant step: `vagrant validate` of vagrant/Vagrantfile (no VM can boot on CI).
# Installs Debian's vagrant if missing (no provider comes with it, so the libvirt and
# VirtualBox blocks are not checked: --ignore-provider). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../vagrant"
if ! command -v vagrant >/dev/null 2>&1; then
  echo "vagrant-validate: installing Debian's vagrant"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends vagrant >/dev/null
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export VAGRANT_HOME=$scratch/home VAGRANT_DOTFILE_PATH=$scratch/dot VAGRANT_CHECKPOINT_DISABLE=1
for n in 1 2 5; do
  DOVE_HYPERVISORS=$n vagrant validate --ignore-provider >"$scratch/out" 2>&1 || {
    cat "$scratch/out" >&2; echo "vagrant-validate: failed with $n hypervisors" >&2; exit 1; }
done
if DOVE_HYPERVISORS=0 vagrant validate --ignore-provider >"$scratch/out" 2>&1; then
  echo "vagrant-validate: DOVE_HYPERVISORS=0 was accepted" >&2; exit 1
fi
echo "vagrant-validate: vagrant/Vagrantfile valid with 1, 2 and 5 hypervisors"
