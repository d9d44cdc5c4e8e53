#!/usr/bin/env bash
# Debian packages the test suite uses as real peers and oracles (SIPp, Kamailio, tshark,
# tcpreplay, baresip, sox, espeak-ng, Chromium, a Japanese font). Installed when missing and
# running as root; otherwise the missing ones are listed and the tests that need them fail.
set -euo pipefail
declare -A want=(
    [tshark]=tshark [sipp]=sip-tester [kamailio]=kamailio [tcpreplay]=tcpreplay
    [tcpdump]=tcpdump [baresip]=baresip-core [sox]=sox [espeak-ng]=espeak-ng
    [chromium]=chromium [ip]=iproute2
)
missing=()
for tool in "${!want[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${want[$tool]}")
done
dpkg -s kamailio-extra-modules >/dev/null 2>&1 || missing+=(kamailio-extra-modules)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing test peers: ${missing[*]}"
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "missing Debian packages for the tests (run as root to install): ${missing[*]}" >&2
fi
