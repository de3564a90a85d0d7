#!/usr/bin/env bash
# Installs what iotstream needs and is missing: Debian packages (apt-get, as
# root), the test-only npm packages (in test/node), then builds and installs
# the extension.  Idempotent and quick when everything is there.
#   tools/install-deps.sh [--no-npm] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

npm_too=1 build=1
for a in "$@"; do
  case "$a" in
    --no-npm) npm_too=0 ;;
    --no-build) build=0 ;;
  esac
done

pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
      libtap-parser-sourcehandler-pgtap-perl
      librdkafka-dev kcat libcurl4-openssl-dev libssl-dev libsnappy-dev libzstd-dev
      zlib1g-dev libavro-dev zstd make gcc nodejs npm mosquitto mosquitto-clients)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node and npm may come from elsewhere than Debian
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=($(printf '%s\n' "${missing[@]}" | grep -vx -e nodejs -e npm || true))
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run this as root or install them" >&2
    exit 1
  fi
  echo "== installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# again whenever package.json changed since the last install
if [ "$npm_too" = 1 ] && { [ ! -f test/node/node_modules/.installed ] ||
                            [ test/node/package.json -nt test/node/node_modules/.installed ]; }; then
  echo "== installing test-only npm packages into test/node"
  (cd test/node && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.installed)
fi

if [ "$build" = 1 ]; then
  echo "== building and installing the extension"
  make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config all
  if [ "$(id -u)" = 0 ]; then
    make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install
  else
    sudo -n make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install
  fi
fi
