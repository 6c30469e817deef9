#!/usr/bin/env bash
# Browser tests of the Desk (dartwing/tests/browser) in real headless Chromium, against a running bench.
#
# What must already run: the bench serving the site (`bench start`: web, Socket.IO, at least one
# worker), with dartwing installed on the site and `allow_tests: true` in its site config.
# Chromium must be installed (Debian: `apt-get install chromium`). The tests drive it with
# Playwright for Python, which this script installs from requirements-browser.txt on every run (it never
# downloads a browser).
#
# Environment:
#   DARTWING_BENCH      the bench (default /opt/frappe-bench)
#   DARTWING_SITE       the site to test (default dartwing.localhost)
#   DARTWING_URL        where a browser reaches that site (default http://$DARTWING_SITE:8000); the
#                       host must resolve to the bench (e.g. a line in /etc/hosts)
#   DARTWING_CHROMIUM   the Chromium binary (default: chromium on PATH)
#   DARTWING_BUILD=0    skip `bench build --app dartwing` and `bench --site … clear-cache`
#   DARTWING_TEST_ARGS  extra pytest arguments, shell-quoted, e.g. "-k cancel"
#   DARTWING_SCREENSHOTS  where screenshots go (default docs/screenshots of the tested app)
#
# Usage: scripts/browser-tests.sh
set -euo pipefail

BENCH=${DARTWING_BENCH:-/opt/frappe-bench}
SITE=${DARTWING_SITE:-dartwing.localhost}
URL=${DARTWING_URL:-http://$SITE:8000}
PY="$BENCH/env/bin/python"
APP="$BENCH/apps/dartwing"

die() {
	echo "browser-tests: $*" >&2
	exit 2
}

[ -x "$PY" ] || die "no bench at $BENCH (set DARTWING_BENCH)"
[ -d "$APP/dartwing/tests/browser" ] || die "$APP has no dartwing/tests/browser"
[ -d "$BENCH/sites/$SITE" ] || die "no site $SITE in $BENCH (set DARTWING_SITE)"
CHROMIUM=${DARTWING_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$CHROMIUM" ] && [ -x "$CHROMIUM" ] || die "Chromium not found (install it or set DARTWING_CHROMIUM)"

# bench_cli ARGS...: "bench ARGS" for frappe's commands, run the way the bench CLI runs them.
bench_cli() {
	(cd "$BENCH/sites" && "$PY" -m frappe.utils.bench_helper frappe "$@")
}

# Installed on every run from the declared file (quick when everything is there).
"$PY" -m pip install --quiet --disable-pip-version-check -r "$APP/requirements.txt" -r "$APP/requirements-browser.txt" ||
	die "installing requirements-browser.txt into the bench's Python failed"

curl -fsS -o /dev/null --max-time 10 "$URL/api/method/ping" ||
	die "nothing answers at $URL (start the bench, or set DARTWING_URL)"

if [ "${DARTWING_BUILD:-1}" != "0" ]; then
	bench_cli build --app dartwing
	bench_cli --site "$SITE" clear-cache
fi

extra=()
if [ -n "${DARTWING_TEST_ARGS:-}" ]; then
	eval "extra=($DARTWING_TEST_ARGS)"
fi

cd "$BENCH/sites"
DARTWING_SITE="$SITE" DARTWING_URL="$URL" DARTWING_CHROMIUM="$CHROMIUM" DARTWING_SITES_PATH="$BENCH/sites" \
	exec "$PY" -m pytest -p no:cacheprovider -v "$APP/dartwing/tests/browser" ${extra[@]+"${extra[@]}"}
