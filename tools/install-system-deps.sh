#!/usr/bin/env bash
# What the test suite needs from the system besides Python, make and git, installed when
# missing: promtool and the Pushgateway (metrics tests), Chromium and a font (the report
# rendered to HTML/PDF and screenshots), poppler-utils (pdftotext reads the printed
# report), a PostgreSQL server (tests/pgkit.py starts throwaway ones for the ledger's
# PostgreSQL backend; Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin,
# which is looked at too). Debian packages via apt-get, when this runs as root (CI, containers);
# otherwise the one command to run is printed and the tests that need the missing programs
# fail naming them.
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: cannot install ${need[*]} (no apt-get); the tests that need them will fail" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "warning: missing ${need[*]}; install them with: sudo apt-get install --no-install-recommends ${need[*]}" >&2
  exit 0
fi
echo "installing ${need[*]} (Debian packages, for the test suite)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
