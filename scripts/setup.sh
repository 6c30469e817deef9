#!/usr/bin/env bash
# Set up and run Dartwing on a developer machine (with internet):  ./scripts/setup.sh [--no-start] [--link]
#
#   1. a Frappe v15 bench at $DARTWING_BENCH (default /opt/frappe-bench): reused if it has env/bin/python,
#      else made with `bench init --frappe-branch version-15`, using the machine's own Redis on :6379
#   2. MariaDB with the utf8mb4_unicode_ci server collation that Frappe needs
#   3. this checkout as the bench's app `dartwing` (`bench get-app <this repo>`; kept if already there)
#   4. the site $DARTWING_SITE (default dartwing.localhost), Administrator password "admin": created if
#      missing, dartwing installed, migrated, developer mode and the scheduler on, the setup wizard done,
#      Desk opening on the Background Jobs workspace, made the default site
#   5. the Procfile runs Dartwing's upkeep (`bench dartwing upkeep`: due retries, run_at, schedules and
#      recovery of dead workers, every half second) beside the worker and the scheduler
#   6. `bench start` in the foreground (web on :8000, socketio, worker, scheduler, upkeep), unless --no-start
#
# Running it again is safe: it only does what is missing, then migrates.
#
#   --no-start  stop after step 5
#   --link      get-app symlinks this checkout into the bench instead of cloning its committed HEAD,
#               so that edits here are live (only when the bench has no dartwing yet)
#
# Environment: DARTWING_BENCH, DARTWING_SITE, DARTWING_DB_ROOT_PASSWORD (MariaDB root password; empty
# means root logs in over TCP without one), DARTWING_PYTHON (default: python3.11, else 3.12 or 3.10).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH=${DARTWING_BENCH:-/opt/frappe-bench}
SITE=${DARTWING_SITE:-dartwing.localhost}
DB_ROOT_PASSWORD=${DARTWING_DB_ROOT_PASSWORD:-}
REDIS_URL=redis://127.0.0.1:6379

START=1
LINK=0
for arg in "$@"; do
	case $arg in
		--no-start) START=0 ;;
		--link) LINK=1 ;;
		-h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; exit 0 ;;
		*) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
	esac
done

say() { printf '\n==> %s\n' "$*"; }
die() {
	printf '\nERROR: %s\n' "$1" >&2
	shift
	for line in "$@"; do printf '  %s\n' "$line" >&2; done
	exit 1
}
is_root() { [ "$(id -u)" = 0 ]; }

# Run bench from the bench folder (bench finds its bench from the working directory).
b() { (cd "$BENCH" && bench "$@"); }

# Commands that need the MariaDB root password. Frappe treats an empty password as "not given" and
# prompts for it (reading stdin when there is no tty): for an empty password, answer with one newline.
with_db_root() {
	if [ -n "$DB_ROOT_PASSWORD" ]; then
		"$@" --db-root-username root --db-root-password "$DB_ROOT_PASSWORD" </dev/null
	else
		printf '\n' | "$@" --db-root-username root
	fi
}

sql() { # sql QUERY: one value from MariaDB as root over TCP
	local client
	client=$(command -v mariadb || command -v mysql) || return 1
	MYSQL_PWD="$DB_ROOT_PASSWORD" "$client" -uroot -h127.0.0.1 -N -B -e "$1"
}

# ---------------------------------------------------------------- 1. bench

find_python() {
	local candidate
	for candidate in ${DARTWING_PYTHON:-python3.11 python3.12 python3.10}; do
		if command -v "$candidate" >/dev/null 2>&1; then
			command -v "$candidate"
			return 0
		fi
	done
	return 1
}

redis_ok() {
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
	else
		(exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 3 reply <&3 && [[ $reply == +PONG* ]]) 2>/dev/null
	fi
}

check_prerequisites() {
	local missing=() python node_major yarn_version
	python=$(find_python) || missing+=("Python 3.11 (python3.11 on PATH; Debian/Ubuntu: apt install python3.11 python3.11-venv python3.11-dev, or pyenv install 3.11)")
	if command -v node >/dev/null 2>&1; then
		node_major=$(node -v | sed 's/^v//; s/\..*//')
		[ "$node_major" -ge 18 ] 2>/dev/null || missing+=("Node.js 18 or newer (found $(node -v); e.g. nvm install 20)")
	else
		missing+=("Node.js 18 or newer (e.g. nvm install 20, or your distribution's nodejs package)")
	fi
	if command -v yarn >/dev/null 2>&1; then
		yarn_version=$(yarn --version 2>/dev/null || echo unknown)
		[[ $yarn_version == 1.* ]] || missing+=("Yarn 1 (found $yarn_version): npm install -g yarn@1.22.22")
	else
		missing+=("Yarn 1: npm install -g yarn@1.22.22")
	fi
	command -v git >/dev/null 2>&1 || missing+=("git")
	command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1 ||
		missing+=("the MariaDB client and server 10.6+ (Debian/Ubuntu: apt install mariadb-server mariadb-client)")
	redis_ok || missing+=("Redis listening on 127.0.0.1:6379 (Debian/Ubuntu: apt install redis-server)")
	if [ ${#missing[@]} -gt 0 ]; then
		die "missing prerequisites for a new bench at $BENCH:" "${missing[@]}" \
			"" "Or set DARTWING_BENCH to an existing Frappe v15 bench."
	fi
	PYTHON=$python
}

ensure_bench_cli() {
	command -v bench >/dev/null 2>&1 && return 0
	say "Installing the bench CLI (pip install frappe-bench)"
	if command -v pipx >/dev/null 2>&1; then
		pipx install frappe-bench
	else
		"$PYTHON" -m pip install --user frappe-bench
	fi
	export PATH="$HOME/.local/bin:$PATH"
	command -v bench >/dev/null 2>&1 || die "bench is still not on PATH" "Add ~/.local/bin to PATH and run this again."
}

init_bench() {
	check_prerequisites
	ensure_bench_cli
	say "Creating a Frappe v15 bench at $BENCH (bench init, a few minutes)"
	mkdir -p "$BENCH/sites" 2>/dev/null ||
		die "cannot create $BENCH" "Set DARTWING_BENCH to a folder you can write, e.g. DARTWING_BENCH=\$HOME/frappe-bench"
	local entry
	for entry in "$BENCH"/* "$BENCH"/.[!.]*; do
		if [ -e "$entry" ] && [ "$entry" != "$BENCH/sites" ]; then
			die "$BENCH exists but is not a bench (it has no env/bin/python)" "Remove it or set DARTWING_BENCH elsewhere."
		fi
	done
	# Use the machine's Redis. bench refuses to run as root unless ./sites/common_site_config.json names
	# the frappe_user; bench init --ignore-exist keeps these keys and adds its defaults.
	[ -f "$BENCH/sites/common_site_config.json" ] || cat >"$BENCH/sites/common_site_config.json" <<-EOF
		{"frappe_user": "$(id -un)", "redis_cache": "$REDIS_URL", "redis_queue": "$REDIS_URL", "redis_socketio": "$REDIS_URL"}
	EOF
	(cd "$BENCH" && bench init --ignore-exist --frappe-branch version-15 --python "$PYTHON" \
		--skip-redis-config-generation "$BENCH")
	b set-config -g redis_cache "$REDIS_URL"
	b set-config -g redis_queue "$REDIS_URL"
	b set-config -g redis_socketio "$REDIS_URL"
	# the machine runs Redis itself: no redis processes in the Procfile
	sed -i '/^redis_[a-z]*:/d' "$BENCH/Procfile"
	# setuptools 81+ has no pkg_resources, which some Frappe v15 imports still need
	if ! "$BENCH/env/bin/python" -c 'import pkg_resources' >/dev/null 2>&1; then
		"$BENCH/env/bin/python" -m pip install --quiet 'setuptools<81'
	fi
}

if [ -x "$BENCH/env/bin/python" ]; then
	say "Using the bench at $BENCH"
	command -v bench >/dev/null 2>&1 || die "the bench CLI is not on PATH" "pip install frappe-bench (or pipx install frappe-bench)"
else
	init_bench
fi
"$BENCH/env/bin/python" -c 'import frappe, sys; sys.exit(0 if frappe.__version__.startswith("15.") else 1)' ||
	die "$BENCH does not run Frappe v15"

# ---------------------------------------------------------------- 2. MariaDB collation

say "Checking MariaDB"
collation=$(sql 'select @@collation_server') ||
	die "cannot log in to MariaDB as root on 127.0.0.1" \
		"Start MariaDB, and if root has a password: export DARTWING_DB_ROOT_PASSWORD=..." \
		"(Frappe needs a root login over TCP to create the site's database and user.)"
if [ "$collation" != utf8mb4_unicode_ci ]; then
	cnf_dir=/etc/mysql/mariadb.conf.d
	cnf="[mysqld]
character-set-client-handshake = FALSE
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci

[mysql]
default-character-set = utf8mb4"
	if is_root && [ -d /etc/mysql ]; then
		mkdir -p "$cnf_dir"
		printf '%s\n' "$cnf" >"$cnf_dir/99-frappe.cnf"
		if [ -f /etc/mysql/my.cnf ] && ! grep -q "^!includedir $cnf_dir" /etc/mysql/my.cnf; then
			printf '\n!includedir %s/\n' "$cnf_dir" >>/etc/mysql/my.cnf
		fi
		echo "wrote $cnf_dir/99-frappe.cnf"
		die "MariaDB's server collation is $collation; Frappe needs utf8mb4_unicode_ci" \
			"The config is written: restart MariaDB (e.g. sudo systemctl restart mariadb) and run this again."
	fi
	die "MariaDB's server collation is $collation; Frappe needs utf8mb4_unicode_ci" \
		"Add this to a file in MariaDB's config (e.g. $cnf_dir/99-frappe.cnf), restart MariaDB, run this again:" \
		"" "$cnf"
fi
echo "collation_server = $collation"

# ---------------------------------------------------------------- 3. the app

if [ -e "$BENCH/apps/dartwing" ]; then
	say "The bench already has apps/dartwing; keeping it"
else
	say "Getting the app: bench get-app $REPO_ROOT"
	if [ "$LINK" = 1 ]; then
		b get-app --soft-link "$REPO_ROOT"
	else
		b get-app "$REPO_ROOT"
	fi
fi
"$BENCH/env/bin/python" -c 'import dartwing' 2>/dev/null || b setup requirements
grep -qx dartwing "$BENCH/sites/apps.txt" ||
	die "dartwing is not listed in $BENCH/sites/apps.txt" "Try: cd $BENCH && bench get-app --overwrite $REPO_ROOT"

# ---------------------------------------------------------------- 4. the site

if [ -f "$BENCH/sites/$SITE/site_config.json" ]; then
	say "Site $SITE exists"
else
	say "Creating site $SITE (Administrator password: admin)"
	with_db_root b new-site "$SITE" --admin-password admin
fi
# Before install-app: a development site gets what a developer needs from the start (the demo job types).
b --site "$SITE" set-config developer_mode 1 </dev/null
installed_apps=$(b --site "$SITE" list-apps </dev/null)
if awk '{print $1}' <<<"$installed_apps" | grep -qx dartwing; then
	echo "dartwing is installed on $SITE"
else
	say "Installing dartwing on $SITE"
	b --site "$SITE" install-app dartwing </dev/null
fi
say "Migrating $SITE"
b --site "$SITE" migrate </dev/null
say "Building Dartwing's Desk assets: bench build --app dartwing"
b build --app dartwing </dev/null
b --site "$SITE" enable-scheduler </dev/null
# The setup wizard answered (English, UTC) and Desk opening on the Background Jobs workspace.
b --site "$SITE" execute dartwing.install.complete_dev_setup </dev/null
b use "$SITE" </dev/null
if ! getent hosts "$SITE" >/dev/null 2>&1; then
	if is_root; then
		echo "127.0.0.1 $SITE" >>/etc/hosts
		echo "added $SITE to /etc/hosts"
	else
		echo "NOTE: $SITE does not resolve; add it: echo '127.0.0.1 $SITE' | sudo tee -a /etc/hosts"
	fi
fi

# ---------------------------------------------------------------- 5. upkeep in the Procfile

# `bench setup procfile` writes the Procfile afresh; running this script again puts the line back.
if [ -f "$BENCH/Procfile" ] && ! grep -q '^dartwing_upkeep:' "$BENCH/Procfile"; then
	echo "dartwing_upkeep: bench dartwing upkeep" >>"$BENCH/Procfile"
	echo "added dartwing_upkeep to $BENCH/Procfile"
fi

say "Ready: http://$SITE:$(cd "$BENCH" && "$BENCH/env/bin/python" -c 'import json; print(json.load(open("sites/common_site_config.json")).get("webserver_port", 8000))')  (Administrator / admin)"
if [ "$START" = 0 ]; then
	echo "Start it with: cd $BENCH && bench start"
	exit 0
fi
say "bench start (Ctrl-C stops web, socketio, worker, scheduler and upkeep)"
cd "$BENCH"
exec bench start
