#!/usr/bin/env bash
# Dartwing's test command:  ./scripts/test.sh [--unit]
#
# Tier 1  pytest dartwing/tests/unit on python3, no Frappe (the working tree). Always runs.
# Tier 2  the checked-out commit (git HEAD, not the working tree) on a fresh site of a Frappe v15
#         bench, with bench's own commands:
#           bench new-site, install-app dartwing, migrate (twice),
#           bench --site S run-tests --app dartwing   (dartwing/tests/integration through
#                                                     dartwing/tests/test_pytest_suites.py),
#           uninstall-app dartwing (must leave nothing behind), drop-site.
#         For the run, the bench's apps/dartwing is the commit's export; the bench's own is put back.
#         --unit: tier 1 only.
#
# Environment: DARTWING_BENCH (default /opt/frappe-bench; no env/bin/python there: tier 2 is skipped,
# loudly), DARTWING_TEST_SITE (default dartwing-test.localhost, recreated each run),
# DARTWING_DB_ROOT_PASSWORD (MariaDB root; empty by default), DARTWING_TEST_ARGS (pytest arguments
# for both tiers, e.g. "-k dedup").
#
# The last line is always "N passed, N failed" over both tiers; the exit status is non-zero when
# anything failed (a failed bench step counts as one failure).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH=${DARTWING_BENCH:-/opt/frappe-bench}
SITE=${DARTWING_TEST_SITE:-dartwing-test.localhost}
PY=$BENCH/env/bin/python
APP=$BENCH/apps/dartwing
export CI=${CI:-true}
PASSED=0 FAILED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dartwing-test.XXXXXX")

case ${1:-} in
	"") UNIT_ONLY=0 ;;
	--unit) UNIT_ONLY=1 ;;
	*) echo "usage: $0 [--unit]" >&2; exit 2 ;;
esac

say() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAILED: $*"; FAILED=$((FAILED + 1)); }
# What `bench --site S <command>` runs, without needing the bench CLI on PATH.
bench() { (cd "$BENCH/sites" && "$PY" -m frappe.utils.bench_helper frappe "$@"); }
# num WORD FILE: the number before WORD on the last pytest summary line of FILE, or 0.
num() { grep -E ' in [0-9.]+s' "$2" | tail -n 1 | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
# Frappe asks for the MariaDB root password when it is empty; answer with an empty line.
with_root() { printf '%s\n' "${DARTWING_DB_ROOT_PASSWORD:-}" | "$@" --db-root-username root; }

# ---------------------------------------------------------------- tier 1
say "Tier 1: pytest dartwing/tests/unit (python3, no Frappe)"
# Every run installs the declared dependencies (quick when they are there): a dependency added to
# these files reaches every machine, and nothing installed by hand is relied on.
install_requirements() { # install_requirements PYTHON TREE: TREE's requirements.txt + requirements-test.txt
	"$1" -m pip install --quiet --disable-pip-version-check -r "$2/requirements.txt" -r "$2/requirements-test.txt" ||
		"$1" -m pip install --quiet --disable-pip-version-check --break-system-packages \
			-r "$2/requirements.txt" -r "$2/requirements-test.txt"
}
install_requirements python3 "$REPO" || fail "tier 1: installing requirements-test.txt failed"
extra_args=()
if [ -n "${DARTWING_TEST_ARGS:-}" ]; then eval "extra_args=(${DARTWING_TEST_ARGS})"; fi  # shell-quoted, as tier 2 reads it
(cd "$REPO" && PYTHONPATH=$REPO python3 -m pytest dartwing/tests/unit -p no:cacheprovider -q \
	${extra_args[@]+"${extra_args[@]}"}) 2>&1 | tee "$WORK/tier1.log"
tier1_status=${PIPESTATUS[0]}
tier1_failed=$(($(num failed "$WORK/tier1.log") + $(num 'errors?' "$WORK/tier1.log")))
PASSED=$((PASSED + $(num passed "$WORK/tier1.log"))) FAILED=$((FAILED + tier1_failed))
if [ "$tier1_status" = 5 ] && [ -z "${DARTWING_TEST_ARGS:-}" ]; then
	fail "tier 1 collected no tests"
elif [ "$tier1_status" != 0 ] && [ "$tier1_status" != 5 ] && [ "$tier1_failed" = 0 ]; then
	fail "tier 1: pytest exited $tier1_status"
fi

# ---------------------------------------------------------------- tier 2
restore() {
	[ -n "${SWAPPED:-}" ] || return 0
	say "Putting the bench's apps/dartwing back"
	rm -f "$APP"
	[ -e "$WORK/original-app" ] || [ -L "$WORK/original-app" ] && mv "$WORK/original-app" "$APP"
	cp "$WORK/apps.txt" "$BENCH/sites/apps.txt"
	if [ -e "$APP" ]; then
		"$PY" -m pip install --quiet --no-deps -e "$APP" >"$WORK/pip.log" 2>&1 || cat "$WORK/pip.log"
	else
		"$PY" -m pip uninstall --quiet -y dartwing
	fi
	SWAPPED=
}
finish() {
	[ -n "${SITE_MADE:-}" ] && with_root bench drop-site "$SITE" --force --no-backup --archived-sites-path "$WORK/archived" >/dev/null
	restore
	rm -rf "$WORK"
}
trap finish EXIT
trap 'fail "interrupted"; echo "$PASSED passed, $FAILED failed"; exit 130' INT TERM

tier2() {
	say "Tier 2: export the checked-out commit $(git -C "$REPO" rev-parse --short HEAD) into $APP"
	[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] ||
		echo "WARNING: uncommitted changes are not tested; tier 2 tests the commit"
	mkdir "$WORK/dartwing" && git -C "$REPO" archive HEAD | tar -x -C "$WORK/dartwing" || return 1
	cp "$BENCH/sites/apps.txt" "$WORK/apps.txt" && SWAPPED=1
	if [ -e "$APP" ] || [ -L "$APP" ]; then mv "$APP" "$WORK/original-app" || return 1; fi
	ln -s "$WORK/dartwing" "$APP" && grep -qx dartwing "$BENCH/sites/apps.txt" || echo dartwing >>"$BENCH/sites/apps.txt"
	"$PY" -m pip install --quiet --no-deps -e "$APP" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; return 1; }
	say "Tier 2: installing requirements.txt and requirements-test.txt into the bench's Python"
	install_requirements "$PY" "$APP" || return 1

	say "Tier 2: bench new-site $SITE, install-app dartwing, migrate twice"
	SITE_MADE=1
	with_root bench new-site "$SITE" --force --admin-password admin >"$WORK/new-site.log" 2>&1 || { cat "$WORK/new-site.log"; return 1; }
	: >"$BENCH/sites/$SITE/.dartwing-test-site"
	bench --site "$SITE" set-config allow_tests true || return 1
	bench --site "$SITE" install-app dartwing || return 1
	bench --site "$SITE" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; return 1; }
	bench --site "$SITE" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; return 1; }

	say "Tier 2: bench --site $SITE run-tests --app dartwing"
	# Tier 1 ran above: run-tests runs the integration suite only (test_pytest_suites.py).
	DARTWING_PYTEST_PATHS=$APP/dartwing/tests/integration bench --site "$SITE" run-tests --app dartwing 2>&1 |
		tee "$WORK/tier2.log"
	local status=${PIPESTATUS[0]} ran verdict failures errors skipped
	ran=$(grep -oE '^Ran [0-9]+ tests?' "$WORK/tier2.log" | tail -n 1 | grep -oE '[0-9]+')
	verdict=$(grep -E '^(OK|FAILED)( \(|$)' "$WORK/tier2.log" | tail -n 1)
	failures=$(grep -oE 'failures=[0-9]+' <<<"$verdict" | cut -d= -f2)
	errors=$(grep -oE 'errors=[0-9]+' <<<"$verdict" | cut -d= -f2)
	skipped=$(grep -oE 'skipped=[0-9]+' <<<"$verdict" | cut -d= -f2)
	PASSED=$((PASSED + ${ran:-0} - ${failures:-0} - ${errors:-0} - ${skipped:-0}))
	FAILED=$((FAILED + ${failures:-0} + ${errors:-0}))
	if [ "$status" -ne 0 ] && [ $((${failures:-0} + ${errors:-0})) -eq 0 ]; then fail "run-tests exited $status"; fi
	[ -n "$ran" ] && [ "$ran" -gt 0 ] || fail "run-tests ran no tests"
	# A test module that cannot be imported stops Frappe's runner (it imports every test_*.py) or
	# pytest's collection: name it, and count each one.
	local unimportable
	unimportable=$(grep -E "^(E +)?(ModuleNotFoundError|ImportError): " "$WORK/tier2.log" | sed -E 's/^E +//' | sort -u)
	if [ -n "$unimportable" ]; then
		while IFS= read -r line; do fail "a test module could not be imported: $line"; done <<<"$unimportable"
	fi

	say "Tier 2: uninstall-app dartwing leaves nothing behind (one test)"
	if bench --site "$SITE" uninstall-app dartwing --yes --no-backup && uninstalled_cleanly; then
		PASSED=$((PASSED + 1))
	else
		fail "uninstall-app left Dartwing behind"
	fi
}

uninstalled_cleanly() { # no Dartwing Core doctype, table or module left on the site
	(cd "$BENCH/sites" && "$PY" - "$SITE" <<'PYTHON'
import sys

import frappe

frappe.init(site=sys.argv[1])
frappe.connect()
left = {
	"tables": sorted(t for t in frappe.db.get_tables() if t in {"tabBackground Job", "tabJob Type", "tabJob Schedule",
		"tabJob Execution Log", "tabOrganization", "tabOrganization Member", "tabBackground Job Dependency", "tabPaused Queue",
		"tabJob Metrics Count", "tabJob Metrics Histogram", "tabJob Metrics Period", "tabBackground Job Turn",
		"tabQueue Organization Cap"}),
	"doctypes": frappe.get_all("DocType", filters={"module": "Dartwing Core"}, pluck="name"),
	"module": frappe.get_all("Module Def", filters={"app_name": "dartwing"}, pluck="name"),
	"installed": [app for app in frappe.get_installed_apps() if app == "dartwing"],
}
print("left behind after uninstall:", left)
sys.exit(1 if any(left.values()) else 0)
PYTHON
	)
}

if [ "$UNIT_ONLY" = 1 ]; then
	echo "Tier 2 not run (--unit)"
elif [ ! -x "$PY" ]; then
	printf '\n%s\n#  TIER 2 SKIPPED: no Frappe bench at %s (no env/bin/python).\n#  Only tier 1 ran. Set DARTWING_BENCH to a Frappe v15 bench (./scripts/setup.sh makes one).\n%s\n' \
		"$(printf '#%.0s' {1..78})" "$BENCH" "$(printf '#%.0s' {1..78})"
elif [ -e "$BENCH/sites/$SITE" ] && [ ! -e "$BENCH/sites/$SITE/.dartwing-test-site" ]; then
	fail "site $SITE exists and was not made by scripts/test.sh; choose another DARTWING_TEST_SITE"
else
	exec 9<"$BENCH" && flock 9 # one run per bench at a time
	tier2 || fail "a tier 2 bench step failed (see above)"
fi

finish
trap - EXIT
echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
