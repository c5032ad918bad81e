#!/usr/bin/env bash
# Installs the Debian packages the interop tests and the demo drive (real peers), only when missing.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have kamailio || need+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || need+=(kamailio-tls-modules)
ls /usr/lib/*/kamailio/modules/outbound.so >/dev/null 2>&1 || need+=(kamailio-outbound-modules)
have baresip || need+=(baresip-core)
have espeak-ng || need+=(espeak-ng)
have sox || need+=(sox)
have tshark || need+=(tshark)
have chromium || need+=(chromium)
have linphonec || need+=(linphone-cli)
[ -x /usr/sbin/dnsmasq ] || have dnsmasq || need+=(dnsmasq-base)
have tmux || need+=(tmux)
compgen -G '/usr/lib/*/libopus.so.0' >/dev/null || need+=(libopus0)
compgen -G '/usr/lib/*/libportaudio.so.2' >/dev/null || need+=(libportaudio2)
have pulseaudio || need+=(pulseaudio)
have paplay || need+=(pulseaudio-utils)
compgen -G '/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so' >/dev/null || need+=(libasound2-plugins)
have sipp || need+=(sip-tester)
have turnserver || need+=(coturn)
have nft || [ -x /usr/sbin/nft ] || need+=(nftables)
have ip || [ -x /usr/sbin/ip ] || need+=(iproute2)
((${#need[@]})) || exit 0
echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if have sudo; then SUDO="sudo -n"; else echo "need root or sudo to install: ${need[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
