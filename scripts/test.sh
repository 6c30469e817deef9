#!/usr/bin/env bash
# Dartwing's test command:  ./scripts/test.sh [--unit]
#
# Tier 1  dartwing/tests/unit with plain pytest on python3, no Frappe (the working tree's code).
# Tier 2  the checked-out commit (git HEAD, not the working tree) on a fresh throwaway site of a
#         Frappe v15 bench: new-site, install-app, migrate twice, then pytest dartwing/tests/integration.
#         Whatever happens, the bench is left as it was found: apps/dartwing, sites/apps.txt and the
#         editable install are put back and the test site is dropped.
#         --unit runs tier 1 only.
#
# Environment:
#   DARTWING_BENCH             the bench (default /opt/frappe-bench); no env/bin/python there: tier 2 is skipped
#   DARTWING_TEST_SITE         throwaway site, recreated on every run (default dartwing-test.localhost)
#   DARTWING_DB_ROOT_PASSWORD  MariaDB root password; empty: frappe's password prompt gets an empty line
#   DARTWING_TEST_ARGS         extra pytest arguments for tier 2, shell-quoted, e.g. "-k dedup"
#
# The last line printed is always "N passed, N failed" summed over both tiers. The exit status is
# non-zero if anything failed (an install step counts as one failure) or if tier 1 found no tests.
set -uo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH=${DARTWING_BENCH:-/opt/frappe-bench}
SITE=${DARTWING_TEST_SITE:-dartwing-test.localhost}
DB_ROOT_PASSWORD=${DARTWING_DB_ROOT_PASSWORD:-}
export CI=${CI:-true}

usage() {
	echo "usage: $0 [--unit]"
	echo "  --unit   tier 1 only (plain pytest, no Frappe bench needed)"
}

UNIT_ONLY=0
for arg in "$@"; do
	case $arg in
		--unit) UNIT_ONLY=1 ;;
		-h | --help) usage; exit 0 ;;
		*) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
	esac
done

T1_PASSED=0 T1_FAILED=0 T1_STATUS="not run"
T2_PASSED=0 T2_FAILED=0 T2_STATUS="not run"
T1_EMPTY=0
TIMINGS=()

say() { printf '\n==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*"; }

PHASE_NAME="" PHASE_START=0
phase() { # phase KEY TITLE: ends the running phase (timed as its KEY) and starts KEY; phase "": just ends it
	local now
	now=$(date +%s)
	[ -n "$PHASE_NAME" ] && TIMINGS+=("$PHASE_NAME $((now - PHASE_START))s")
	PHASE_NAME=$1 PHASE_START=$now
	[ $# -ge 2 ] && say "$2"
	return 0
}

count() { # count WORD-REGEX SUMMARY-LINE -> the number before WORD in pytest's summary, or 0
	local n
	n=$(grep -oE "[0-9]+ ($1)\b" <<<"$2" | head -n 1 | cut -d' ' -f1)
	echo "${n:-0}"
}

# run_pytest LOG COMMAND...  tees the output to LOG, sets PT_RC, PT_PASSED, PT_FAILED (errors included)
run_pytest() {
	local log=$1 summary
	shift
	"$@" 2>&1 | tee "$log"
	PT_RC=${PIPESTATUS[0]}
	summary=$(grep -E '([0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)|no tests ran)' "$log" |
		grep -E ' in [0-9.]+s' | tail -n 1)
	PT_PASSED=$(count passed "$summary")
	PT_FAILED=$(($(count failed "$summary") + $(count 'errors?' "$summary")))
	if [ "$PT_RC" -ne 0 ] && [ "$PT_RC" -ne 5 ] && [ "$PT_FAILED" -eq 0 ]; then
		warn "pytest exited with status $PT_RC without reporting a failure; counting it as 1 failure"
		PT_FAILED=1
	fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dartwing-test.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }

# ---------------------------------------------------------------- tier 1

tier1_pytest() {
	(cd "$REPO_ROOT" && PYTHONPATH="$REPO_ROOT" PYTHONDONTWRITEBYTECODE=1 \
		exec python3 -m pytest dartwing/tests/unit -p no:cacheprovider -q -ra)
}

tier1() {
	phase unit "Tier 1: dartwing/tests/unit (python3, no Frappe)"
	if ! command -v python3 >/dev/null 2>&1; then
		T1_FAILED=1 T1_STATUS="python3 not found"
		return
	fi
	if ! python3 -c 'import pytest, croniter' >/dev/null 2>&1; then
		echo "pytest or croniter is not importable by python3; installing them"
		python3 -m pip install --quiet pytest "croniter>=1.3,<3" ||
			python3 -m pip install --quiet --user pytest "croniter>=1.3,<3" ||
			python3 -m pip install --quiet --user --break-system-packages pytest "croniter>=1.3,<3"
	fi
	run_pytest "$WORK/tier1.log" tier1_pytest
	T1_PASSED=$PT_PASSED T1_FAILED=$PT_FAILED T1_STATUS="pytest exit $PT_RC"
	if [ "$PT_RC" -eq 5 ]; then
		warn "tier 1 collected no tests (dartwing/tests/unit); the run will fail"
		T1_EMPTY=1 T1_STATUS="NO TESTS"
	fi
}

# ---------------------------------------------------------------- tier 2

PY="$BENCH/env/bin/python"
APP="$BENCH/apps/dartwing"
APPS_TXT="$BENCH/sites/apps.txt"
SITE_DIR="$BENCH/sites/$SITE"
MARKER="$SITE_DIR/.dartwing-test-site"
EXPORT="$WORK/dartwing"
BACKUP="$BENCH/apps/.dartwing-ci-backup-$$"

SWAPPED=0 ORIG_KIND="" ORIG_TARGET="" APPS_TXT_SAVED=0 ORIG_INSTALLED=0 SITE_TOUCHED=0 CLEANED=0

# bench_cli ARGS...: "bench ARGS" for frappe's commands, run the way the bench CLI runs them (from
# sites/ with the bench's Python), so it works without the bench CLI on PATH and needs no root override.
bench_cli() {
	(cd "$BENCH/sites" && "$PY" -m frappe.utils.bench_helper frappe "$@")
}

# with_db_root COMMAND...: COMMAND needs the MariaDB root password. frappe treats an empty password as
# "not given" and prompts (getpass reads stdin without a tty), so for an empty one pipe in one newline.
with_db_root() {
	if [ -n "$DB_ROOT_PASSWORD" ]; then
		"$@" --db-root-username root --db-root-password "$DB_ROOT_PASSWORD" </dev/null
	else
		printf '\n' | "$@" --db-root-username root
	fi
}

editable_install() { # pip install -e apps/dartwing into the bench env (pip records the resolved path)
	local log="$WORK/pip-$RANDOM.log"
	if (cd "$BENCH" && { "$PY" -m pip install --quiet --no-deps --no-build-isolation -e "$APP" ||
		"$PY" -m pip install --quiet --no-deps -e "$APP"; }) >"$log" 2>&1; then
		return 0
	fi
	cat "$log"
	return 1
}

imported_from() { # where the bench's Python imports dartwing from (run outside any checkout)
	(cd "$BENCH/sites" && "$PY" -c 'import dartwing; print(dartwing.__file__)' 2>&1)
}

ensure_line() { # ensure_line FILE LINE: LINE on its own line in FILE, minding a missing final newline
	local file=$1 line=$2
	[ -f "$file" ] && grep -qxF "$line" "$file" && return 0
	if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then printf '\n' >>"$file"; fi
	printf '%s\n' "$line" >>"$file"
}

t2_fail() {
	T2_FAILED=$((T2_FAILED + 1))
	T2_STATUS=$1
	echo "TIER 2 FAILURE: $1"
}

# Put the bench back as it was. Idempotent; runs from the EXIT/INT/TERM trap and explicitly before
# the summary, so that its output comes before the final line.
cleanup() {
	[ "$CLEANED" = 1 ] && return 0
	CLEANED=1
	trap '' INT TERM
	if [ "$SITE_TOUCHED" = 1 ]; then
		say "Cleanup: dropping $SITE"
		(cd "$BENCH" && with_db_root bench_cli drop-site "$SITE" --force --no-backup \
			--archived-sites-path "$WORK/archived") || warn "drop-site $SITE failed"
		if [ -d "$SITE_DIR" ] && [ -e "$MARKER" ]; then
			warn "$SITE_DIR was still there; removing it (its database may be left behind)"
			rm -rf "$SITE_DIR"
		fi
	fi
	if [ "$SWAPPED" = 1 ]; then
		say "Cleanup: restoring $APP and sites/apps.txt"
		if [ -L "$APP" ] && [ "$(readlink "$APP")" = "$EXPORT" ]; then rm -f "$APP"; fi
		case $ORIG_KIND in
			link) [ -e "$APP" ] || [ -L "$APP" ] || ln -s "$ORIG_TARGET" "$APP" ;;
			dir) [ -e "$APP" ] || [ -L "$APP" ] || mv "$BACKUP" "$APP" ;;
		esac
		if [ "$APPS_TXT_SAVED" = 1 ]; then
			cat "$WORK/apps.txt.orig" >"$APPS_TXT"
		else
			rm -f "$APPS_TXT"
		fi
		if [ -d "$APP" ]; then
			editable_install || warn "re-installing $APP into $BENCH/env failed"
		elif [ "$ORIG_INSTALLED" = 0 ]; then
			"$PY" -m pip uninstall --quiet -y dartwing || warn "pip uninstall dartwing failed"
		else
			warn "there is no $APP to re-install; uninstalling dartwing from $BENCH/env"
			"$PY" -m pip uninstall --quiet -y dartwing
		fi
		echo "apps/dartwing: $(if [ -L "$APP" ]; then echo "-> $(readlink "$APP")"; elif [ -d "$APP" ]; then echo directory; else echo absent; fi)"
		echo "the bench's Python imports dartwing from: $(imported_from)"
	fi
	rm -rf "$WORK"
	return 0
}

on_signal() {
	echo
	warn "interrupted ($1); cleaning up"
	cleanup
	trap - EXIT
	echo "interrupted: the interruption counts as 1 failure"
	echo "$((T1_PASSED + T2_PASSED)) passed, $((T1_FAILED + T2_FAILED + 1)) failed"
	exit "$2"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

tier2() {
	if [ ! -x "$PY" ]; then
		echo
		echo "########################################################################"
		echo "#"
		echo "#   TIER 2 SKIPPED: no Frappe bench at $BENCH"
		echo "#   ($PY is not executable)"
		echo "#"
		echo "#   Only the unit tests ran. Set DARTWING_BENCH to a Frappe v15 bench"
		echo "#   (./scripts/setup.sh makes one) to run the integration tests."
		echo "#"
		echo "########################################################################"
		T2_STATUS="SKIPPED (no bench at $BENCH)"
		return
	fi
	if ! [[ $SITE =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]]; then
		t2_fail "invalid DARTWING_TEST_SITE '$SITE'"
		return
	fi
	if [ -e "$SITE_DIR" ] && [ ! -e "$MARKER" ]; then
		t2_fail "site $SITE exists and was not made by scripts/test.sh; refusing to recreate it"
		return
	fi
	if [ -e "$APP" ] && [ ! -L "$APP" ] && [ ! -d "$APP" ]; then
		t2_fail "$APP is neither a directory nor a symlink"
		return
	fi

	phase prepare "Tier 2: export HEAD and point the bench at it"
	# One run at a time per bench: a second run would take the first one's export for the original.
	# The lock is on the bench folder itself, so it leaves no file behind.
	if command -v flock >/dev/null 2>&1 && exec 9<"$BENCH"; then
		if ! flock -n 9; then
			echo "another scripts/test.sh run is using $BENCH; waiting for it (up to 30 minutes)"
			flock -w 1800 9 || { t2_fail "timed out waiting for the other run on $BENCH"; return; }
		fi
	fi
	local stale
	for stale in "$BENCH"/apps/.dartwing-ci-backup-*; do
		[ -e "$stale" ] && warn "$stale is left over from an interrupted run (the original apps/dartwing?)"
	done
	if [ -L "$APP" ] && [ ! -e "$APP" ]; then
		warn "$APP is a dangling symlink (-> $(readlink "$APP")); it will be put back as it is"
	fi
	local head
	head=$(git -C "$REPO_ROOT" rev-parse --short HEAD) || { t2_fail "$REPO_ROOT is not a git checkout"; return; }
	mkdir -p "$EXPORT"
	if ! git -C "$REPO_ROOT" archive --format=tar HEAD | tar -x -C "$EXPORT"; then
		t2_fail "git archive HEAD failed"
		return
	fi
	echo "exported commit $head to $EXPORT"
	if [ -n "$(git -C "$REPO_ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		warn "the working tree has uncommitted changes: tier 2 tests the committed HEAD ($head) only"
	fi
	if pgrep -f "frappe\.utils\.bench_helper|$BENCH/env/bin/python|gunicorn.*frappe" >/dev/null 2>&1; then
		warn "other processes are using $BENCH; Python processes they start meanwhile import the exported HEAD"
	fi

	if "$PY" -c 'import importlib.metadata as m; m.distribution("dartwing")' >/dev/null 2>&1; then ORIG_INSTALLED=1; fi
	if [ -L "$APP" ]; then
		ORIG_KIND=link ORIG_TARGET=$(readlink "$APP")
	elif [ -d "$APP" ]; then
		ORIG_KIND=dir
	else
		ORIG_KIND=absent
	fi
	if [ -e "$APPS_TXT" ]; then
		cp -p "$APPS_TXT" "$WORK/apps.txt.orig" && APPS_TXT_SAVED=1
	fi
	echo "bench had apps/dartwing: $ORIG_KIND${ORIG_TARGET:+ -> $ORIG_TARGET}"
	SWAPPED=1
	case $ORIG_KIND in
		link) rm -f "$APP" ;;
		dir) mv "$APP" "$BACKUP" || { t2_fail "could not move $APP aside"; return; } ;;
	esac
	if ! ln -s "$EXPORT" "$APP"; then
		t2_fail "could not link $APP"
		return
	fi
	ensure_line "$APPS_TXT" dartwing
	if ! editable_install; then
		t2_fail "pip install -e $APP failed"
		return
	fi
	echo "the bench's Python imports dartwing from: $(imported_from)"
	if ! "$PY" -c 'import croniter, prometheus_client, pytest, socketio, websocket, requests, psutil' >/dev/null 2>&1; then
		echo "installing the app's requirements and the tier 2 test dependencies into $BENCH/env"
		if ! "$PY" -m pip install --quiet -r "$EXPORT/requirements.txt" pytest 'python-socketio[client]' \
			websocket-client requests psutil; then
			t2_fail "installing the test dependencies failed"
			return
		fi
	fi

	phase new-site "Tier 2: new-site $SITE"
	mkdir -p "$SITE_DIR" && : >"$MARKER"
	SITE_TOUCHED=1
	if ! (cd "$BENCH" && with_db_root bench_cli new-site "$SITE" --force --admin-password admin); then
		t2_fail "bench new-site $SITE failed"
		return
	fi
	: >"$MARKER"
	if ! (cd "$BENCH" && bench_cli --site "$SITE" set-config allow_tests true </dev/null); then
		t2_fail "bench set-config allow_tests failed"
		return
	fi

	phase install-app "Tier 2: install-app dartwing"
	if ! (cd "$BENCH" && bench_cli --site "$SITE" install-app dartwing </dev/null); then
		t2_fail "bench install-app dartwing failed"
		return
	fi

	local n
	for n in 1 2; do
		phase "migrate-$n" "Tier 2: migrate ($n of 2)"
		if ! (cd "$BENCH" && bench_cli --site "$SITE" migrate </dev/null); then
			t2_fail "bench migrate ($n of 2) failed"
			return
		fi
	done

	phase integration "Tier 2: pytest dartwing/tests/integration on $SITE (HEAD $head)"
	local extra=()
	if [ -n "${DARTWING_TEST_ARGS:-}" ]; then
		eval "extra=($DARTWING_TEST_ARGS)" || { t2_fail "cannot parse DARTWING_TEST_ARGS"; return; }
	fi
	tier2_pytest() {
		(cd "$BENCH/sites" && DARTWING_SITE="$SITE" DARTWING_SITES_PATH="$BENCH/sites" \
			exec "$PY" -m pytest "$APP/dartwing/tests/integration" -p no:cacheprovider -q -ra --durations=10 \
			${extra[@]+"${extra[@]}"} </dev/null)
	}
	run_pytest "$WORK/tier2.log" tier2_pytest
	T2_PASSED=$((T2_PASSED + PT_PASSED)) T2_FAILED=$((T2_FAILED + PT_FAILED)) T2_STATUS="pytest exit $PT_RC"
	if [ "$PT_RC" -eq 5 ]; then
		warn "tier 2 ran no tests (dartwing/tests/integration at HEAD $head${DARTWING_TEST_ARGS:+, args: $DARTWING_TEST_ARGS})"
		T2_STATUS="no tests ran"
	fi

	phase uninstall "Tier 2: uninstall-app dartwing leaves nothing behind (counts as one test)"
	if (cd "$BENCH" && bench_cli --site "$SITE" uninstall-app dartwing --yes --no-backup </dev/null) &&
		uninstalled_cleanly; then
		T2_PASSED=$((T2_PASSED + 1))
	else
		t2_fail "uninstall-app dartwing did not leave the site clean"
	fi
}

# uninstalled_cleanly: no Dartwing Core doctype, table, role or module is left on the test site.
uninstalled_cleanly() {
	(cd "$BENCH/sites" && "$PY" - "$SITE" <<'PYTHON'
import sys

import frappe

frappe.init(site=sys.argv[1])
frappe.connect()
tables = {"tabBackground Job", "tabJob Type", "tabJob Schedule", "tabJob Execution Log", "tabOrganization",
	"tabOrganization Member", "tabBackground Job Dependency", "tabPaused Queue"}
left = {
	"tables": sorted(tables & set(frappe.db.get_tables())),
	"doctypes": frappe.get_all("DocType", filters={"module": "Dartwing Core"}, pluck="name"),
	"module": frappe.get_all("Module Def", filters={"app_name": "dartwing"}, pluck="name"),
	"installed": [app for app in frappe.get_installed_apps() if app == "dartwing"],
}
print("left behind after uninstall:", left)
sys.exit(1 if any(left.values()) else 0)
PYTHON
	)
}

# ---------------------------------------------------------------- main

START=$(date +%s)
tier1
if [ "$UNIT_ONLY" = 1 ]; then
	T2_STATUS="not run (--unit)"
else
	tier2
fi
if [ "$SWAPPED" = 1 ] || [ "$SITE_TOUCHED" = 1 ]; then phase cleanup; fi
cleanup
phase ""

PASSED=$((T1_PASSED + T2_PASSED))
FAILED=$((T1_FAILED + T2_FAILED))
echo
echo "==> Summary ($(($(date +%s) - START))s)"
printf '  tier 1 (unit):        %s passed, %s failed  [%s]\n' "$T1_PASSED" "$T1_FAILED" "$T1_STATUS"
printf '  tier 2 (integration): %s passed, %s failed  [%s]\n' "$T2_PASSED" "$T2_FAILED" "$T2_STATUS"
printf '  timings:'; printf ' [%s]' ${TIMINGS[@]+"${TIMINGS[@]}"}; echo
echo "$PASSED passed, $FAILED failed"
if [ "$FAILED" -gt 0 ] || [ "$T1_EMPTY" = 1 ]; then exit 1; fi
exit 0
