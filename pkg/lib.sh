# shellcheck shell=sh disable=SC2034
# (SC2034: this file sets variables for the scripts that source it.)
# confine: functions shared by preinstall, postinstall and uninstall. Sourced, never run.
#
# Rules every script follows: POSIX sh only (macOS's /bin/sh is bash 3.2 in sh mode, or dash); `set -eu`;
# each step is idempotent; every line of output starts with "confine: " so it can be found in
# /var/log/install.log; a failure is one "confine: ERROR: ..." line and a non-zero exit. Values from the
# fleet spec come only from fleet-data.sh, beside this file. Paths there are paths on the Mac; the scripts
# put the target volume ($T, empty for "/") in front of every file path they touch.

# A fixed PATH: Installer's environment is not a user's, and nothing is picked up from a folder the agent
# could write. CONFINE_SIM_BIN is for tests only: the simulated-macOS suite (tests/macos-sim) points it at
# its fake dscl, launchctl, ... so they shadow the real tools while everything else stays as on a Mac. No
# Mac sets it, and whoever can set Installer's environment is root already.
PATH=/usr/bin:/bin:/usr/sbin:/sbin
if [ -n "${CONFINE_SIM_BIN:-}" ]; then
	PATH=$CONFINE_SIM_BIN:$PATH
fi
export PATH
umask 022
# No pathname expansion anywhere: values are never meant as patterns.
set -f

NL='
'
# The local admin group; macOS gives it GID 80.
ADMIN_GID=80

log() { printf 'confine: %s\n' "$*"; }
fail() {
	printf 'confine: ERROR: %s\n' "$*" >&2
	exit 1
}

CONFINE_DIR=$(cd "$(dirname "$0")" && pwd -P)
# Installer starts the scripts in its sandbox (capture pkg-preinstall-env--01.txt: PWD=/private/tmp/
# PKInstallSandbox.*/Scripts/...), which the agent cannot read; commands run as the agent inherit the
# folder, and on macOS getcwd fails and `find -execdir` refuses to run there. Everything starts at "/".
cd /
# shellcheck source=fleet-data.sh
. "$CONFINE_DIR/fleet-data.sh"

# The sshd drop-in that refuses the fleet's agents: macOS 13 and later include sshd_config.d/*.
SSHD_DROP_IN=/etc/ssh/sshd_config.d/confine-$FLEET_NAME.conf

require_root() {
	[ "$(id -u)" = 0 ] || fail "must run as root (Installer runs package scripts as root)"
}

# set_target VOLUME: T is Installer's target volume ($3), resolved, without its trailing slash: "" for "/".
# `installer -target "/Volumes/Macintosh HD"` names the boot volume through a link to "/".
set_target() {
	case $1 in
	/*) T=$(cd "$1" && pwd -P) || fail "the target volume '$1' is not a folder" ;;
	*) fail "the target volume '$1' is not an absolute path" ;;
	esac
	T=${T%/}
}

# Accounts are records in the directory service of the running system, so the package can only install
# onto the volume the Mac booted from. Installer passes "/" for it; any other target must report the same
# Volume UUID in `diskutil info` as "/" (that is also how the simulation presents its temporary volume).
require_booted_volume() {
	if [ -z "$T" ]; then
		return 0
	fi
	booted=$(volume_uuid /) || booted=
	target=$(volume_uuid "$T") || target=
	if [ -z "$booted" ] || [ "$booted" != "$target" ]; then
		fail "the target volume $T is not the running system; install onto the boot volume"
	fi
}

volume_uuid() {
	diskutil info "$1" | awk -F': *' '$1 ~ /^ *Volume UUID$/ { print $2; exit }'
}

# macos_version: prints this Mac's version; `sw_vers` prints "ProductVersion:", two tabs, the version
# (captures sw_vers--01.txt, sw_vers--02.txt).
macos_version() { sw_vers | awk -F '\t+' '$1 == "ProductVersion:" { print $2; exit }'; }

# version_at_least HAVE WANT: compares dotted versions numerically, up to three parts.
version_at_least() {
	awk -v have="$1" -v want="$2" 'BEGIN {
		split(have, h, "."); split(want, w, ".")
		for (i = 1; i <= 3; i++) {
			if (h[i] + 0 > w[i] + 0) exit 0
			if (h[i] + 0 < w[i] + 0) exit 1
		}
		exit 0
	}'
}

# field PREFIX N NAME: REPLY=${PREFIX_N_NAME}, a list element from the data file. N is one of the scripts'
# own counters and PREFIX and NAME are literals, so eval only ever sees a variable name, never a value.
field() {
	case $2 in '' | *[!0-9]*) fail "internal error: bad index '$2'" ;; esac
	case $1$3 in '' | *[!A-Z0-9_]*) fail "internal error: bad field '$1 $3'" ;; esac
	REPLY=
	eval "REPLY=\${$1_$2_$3}"
}

# load_group N: G_* from GROUP_N_*.
load_group() {
	field GROUP "$1" NAME
	G_NAME=$REPLY
	field GROUP "$1" GID
	G_GID=$REPLY
	field GROUP "$1" FULL_NAME
	G_FULL_NAME=$REPLY
	field GROUP "$1" INCLUDE_LOCAL_ADMINS
	G_INCLUDE_LOCAL_ADMINS=$REPLY
	field GROUP "$1" MEMBER_COUNT
	G_MEMBER_COUNT=$REPLY
}

# load_agent N: A_* from AGENT_N_*.
load_agent() {
	ai=$1
	field AGENT "$1" NAME
	A_NAME=$REPLY
	field AGENT "$1" FULL_NAME
	A_FULL_NAME=$REPLY
	field AGENT "$1" UID
	A_UID=$REPLY
	field AGENT "$1" GID
	A_GID=$REPLY
	field AGENT "$1" GROUP
	A_GROUP=$REPLY
	field AGENT "$1" HOME
	A_HOME=$REPLY
	field AGENT "$1" SHELL
	A_SHELL=$REPLY
	field AGENT "$1" WORKSPACE
	A_WORKSPACE=$REPLY
	field AGENT "$1" WORKSPACE_GROUP
	A_WORKSPACE_GROUP=$REPLY
	field AGENT "$1" WORKSPACE_MODE
	A_WORKSPACE_MODE=$REPLY
	field AGENT "$1" CONFIG_DIR
	A_CONFIG_DIR=$REPLY
	field AGENT "$1" CONFIG_PATH
	A_CONFIG_PATH=$REPLY
	field AGENT "$1" STATE_DIR
	A_STATE_DIR=$REPLY
	field AGENT "$1" SECRETS_DIR
	A_SECRETS_DIR=$REPLY
	field AGENT "$1" TOKEN_PATH
	A_TOKEN_PATH=$REPLY
	field AGENT "$1" TOKEN_BYTES
	A_TOKEN_BYTES=$REPLY
	field AGENT "$1" LOG_DIR
	A_LOG_DIR=$REPLY
	field AGENT "$1" LABEL
	A_LABEL=$REPLY
	field AGENT "$1" PLIST
	A_PLIST=$REPLY
	field AGENT "$1" PORT
	A_PORT=$REPLY
	field AGENT "$1" NODE
	A_NODE=$REPLY
	field AGENT "$1" INSTALL
	A_INSTALL=$REPLY
	field AGENT "$1" PREFIX
	A_PREFIX=$REPLY
	field AGENT "$1" ENTRY
	A_ENTRY=$REPLY
	field AGENT "$1" OPENCLAW_VERSION
	A_OPENCLAW_VERSION=$REPLY
	field AGENT "$1" ALLOW_LIFECYCLE_SCRIPTS
	A_ALLOW_LIFECYCLE_SCRIPTS=$REPLY
	field AGENT "$1" SSH_KEY_COUNT
	A_SSH_KEY_COUNT=$REPLY
	field AGENT "$1" SECRET_COUNT
	A_SECRET_COUNT=$REPLY
	field AGENT "$1" ALLOWLIST_COUNT
	A_ALLOWLIST_COUNT=$REPLY
	field AGENT "$1" ROTATION_COUNT
	A_ROTATION_COUNT=$REPLY
	field AGENT "$1" REGISTERED_KEYS
	A_REGISTERED_KEYS=$REPLY
}

# each_agent FUNCTION: runs FUNCTION once per agent, with that agent's A_* loaded.
each_agent() {
	ei=1
	while [ "$ei" -le "$AGENT_COUNT" ]; do
		load_agent "$ei"
		STEP="$1 ($A_NAME)"
		"$1"
		ei=$((ei + 1))
	done
}

# each_group FUNCTION: runs FUNCTION once per group (personal groups first), with G_* and gi set.
each_group() {
	gi=1
	while [ "$gi" -le "$GROUP_COUNT" ]; do
		load_group "$gi"
		"$1"
		gi=$((gi + 1))
	done
}

is_agent() { listed AGENT "$1"; }

# listed AGENT|GROUP NAME: whether the data file has an agent (a group) named NAME.
listed() {
	case $1 in AGENT) xcount=$AGENT_COUNT ;; *) xcount=$GROUP_COUNT ;; esac
	xi=1
	while [ "$xi" -le "$xcount" ]; do
		field "$1" "$xi" NAME
		if [ "$REPLY" = "$2" ]; then
			return 0
		fi
		xi=$((xi + 1))
	done
	return 1
}

# group_gid NAME: REPLY = the GID the spec gives group NAME.
group_gid() {
	xi=1
	while [ "$xi" -le "$GROUP_COUNT" ]; do
		field GROUP "$xi" NAME
		if [ "$REPLY" = "$1" ]; then
			field GROUP "$xi" GID
			return 0
		fi
		xi=$((xi + 1))
	done
	fail "internal error: group $1 is not in the data file"
}

# ds_get RECORD ATTRIBUTE: REPLY = the attribute as `dscl . -read` prints it (several values are separated
# by spaces); returns 1 if the record or attribute is missing. dscl prints "Attr: value", or "Attr:" and
# the value on the next line after one space when the value contains a space; an attribute outside
# Apple's standard names (IsHidden) is printed as "dsAttrTypeNative:Attr" (capture
# dscl-read-ishidden--01.txt). The trailing "x" keeps newlines at the end of a value, which command
# substitution would otherwise drop.
ds_get() {
	REPLY=$(
		dscl . -read "$1" "$2" 2>/dev/null || :
		printf x
	)
	REPLY=${REPLY%x}
	REPLY=${REPLY%"$NL"}
	REPLY=${REPLY#dsAttrTypeNative:}
	case $REPLY in
	"$2:$NL "*) REPLY=${REPLY#"$2:$NL "} ;;
	"$2: "*) REPLY=${REPLY#"$2: "} ;;
	*)
		REPLY=
		return 1
		;;
	esac
}

# ds_set RECORD ATTRIBUTE VALUE: writes the attribute only if it differs, so a rerun changes nothing.
ds_set() {
	if ! ds_get "$1" "$2" || [ "$REPLY" != "$3" ]; then
		dscl . -create "$1" "$2" "$3"
	fi
}

# check_id KIND ATTRIBUTE NAME ID WHAT: NAME must be absent or have ID, and no other record may hold ID.
# KIND is Users or Groups. Both cases name both parties, so the admin knows what to change.
check_id() {
	if ds_get "/$1/$3" "$2" && [ "$REPLY" != "$4" ]; then
		fail "$5 '$3' already exists with ID $REPLY, but the spec gives it ID $4; nothing was changed"
	fi
	owner=$(dscl . -list "/$1" "$2" | awk -v id="$4" -v me="$3" '$2 == id && $1 != me { print $1; exit }')
	if [ -n "$owner" ]; then
		fail "ID $4 of $5 '$3' already belongs to $5 '$owner'; nothing was changed"
	fi
}

check_collisions() {
	each_group check_group_id
	each_agent check_user_id
}

check_group_id() { check_id Groups PrimaryGroupID "$G_NAME" "$G_GID" group; }
check_user_id() { check_id Users UniqueID "$A_NAME" "$A_UID" user; }

# own OWNER MODE PATH: sets owner (numeric uid:gid: no directory-service lookup, which can lag right
# after dscl creates a record) and mode. Refuses a symbolic link: many paths sit in folders the agent
# owns, and chown/chmod through a link the agent planted would hand it any file on the Mac.
own() {
	if [ -L "$3" ]; then
		fail "$3 is a symbolic link; refusing to change its owner"
	fi
	chown -h "$1" "$3"
	chmod "$2" "$3"
}

# ensure_dir OWNER MODE PATH
ensure_dir() {
	if [ -L "$3" ]; then
		fail "$3 is a symbolic link; refusing to use it"
	fi
	mkdir -p "$3"
	own "$1" "$2" "$3"
}

# place SOURCE DEST OWNER MODE: moves a file made in the root-only work folder into place. rename(2)
# replaces DEST itself, even a link, and never writes through it.
place() {
	chown "$3" "$1"
	chmod "$4" "$1"
	mv -f "$1" "$2"
}

# file_info PATH: "<permissions> <uid> <gid>" of PATH itself, e.g. "drwxr-x--- 501 20". ls, not stat:
# BSD and GNU stat take different options, while `ls -ldn` prints alike on both. macOS appends "+" (an
# ACL, every home has one) or "@" (extended attributes) to the permissions (captures
# ls-la-home-acl--01.txt, ls-le-home--01.txt): only their first 10 characters are kept.
file_info() {
	# shellcheck disable=SC2012
	ls -ldn "$1" | awk '{ print substr($1, 1, 10), $3, $4 }'
}

# mode_of PATH: the permission bits in octal (e.g. 750).
mode_of() {
	file_info "$1" | awk '{
		s = substr($1, 2, 9); m = 0
		for (i = 1; i <= 9; i++) m = m * 2 + (substr(s, i, 1) != "-")
		printf "%o\n", m
	}'
}

# human_homes: the home of every real user (UniqueID 501 and up, not an agent of this fleet, home under
# /Users but not /Users/Shared), one per line.
human_homes() {
	dscl . -list /Users UniqueID | while read -r hname huid; do
		if [ "$huid" -ge 501 ] 2>/dev/null && ! is_agent "$hname" && ds_get "/Users/$hname" NFSHomeDirectory; then
			case $REPLY in
			/Users/Shared | /Users/Shared/*) ;;
			/Users/?*) printf '%s\n' "$REPLY" ;;
			esac
		fi
	done
}

daemon_loaded() { launchctl print "system/$1" >/dev/null 2>&1; }

# daemon_pid LABEL: prints the PID of the job's running process; fails if it does not run. `launchctl
# print` has top-level lines "<tab>state = running" and, only while it runs, "<tab>pid = N" (capture
# launchctl-print-system-daemon--01.txt; nested blocks are indented further).
daemon_pid() {
	launchctl print "system/$1" 2>/dev/null | awk '
		/^\tstate = running$/ { running = 1 }
		/^\tpid = [0-9]+$/ { pid = $3 }
		END { if (!running || pid == "") exit 1; print pid }'
}

# wait_unloaded LABEL: `launchctl bootout` returns before launchd has let go of the label; bootstrapping
# again too early fails with EIO. Wait (bounded) until `launchctl print` no longer finds it.
wait_unloaded() {
	wi=0
	while daemon_loaded "$1"; do
		wi=$((wi + 1))
		if [ "$wi" -gt 30 ]; then
			fail "$1 is still loaded 30 seconds after bootout"
		fi
		sleep 1
	done
}

# bootstrap LABEL PLIST: loads a daemon, retrying while launchd still holds the old job (EIO, 5) or is busy
# with it (37). Background Task Management refuses a daemon switched off in Login Items with the same EIO
# (captures launchctl-bootstrap-eio--02.txt, sfltool-dumpbtm-excerpt--01.txt: "disallowed"), so one that
# still fails says where it is allowed. Every daemon of the fleet is loaded this way.
bootstrap() {
	bi=1
	while :; do
		bstatus=0
		launchctl bootstrap system "$2" || bstatus=$?
		if [ "$bstatus" -eq 0 ] || { [ "$bstatus" -eq 37 ] && daemon_loaded "$1"; }; then
			return 0
		elif [ "$bstatus" -ne 5 ] && [ "$bstatus" -ne 37 ]; then
			fail "launchctl bootstrap $1 failed with status $bstatus"
		elif [ "$bi" -ge 10 ]; then
			fail "launchctl bootstrap $1 still failed (status $bstatus) after $bi tries: if it is switched off in System Settings > General > Login Items, allow it there, or deploy the fleet's managed background-items profile (com.apple.servicemanagement) before the package"
		fi
		bi=$((bi + 1))
		sleep 1
	done
}

# stop_daemon: boots the agent's daemon out, if loaded, and waits until launchd has let it go.
stop_daemon() {
	if daemon_loaded "$A_LABEL"; then
		log "stopping $A_LABEL"
		launchctl bootout "system/$A_LABEL" || :
		wait_unloaded "$A_LABEL"
	fi
}

# Installer hands the scripts the console user's environment (capture pkg-preinstall-env--01.txt:
# HOME=/Users/admin, USER=admin): a tool root runs with it reads that user's ~/.npmrc, ~/.curlrc or
# OPENSSL_CONF, and NODE_OPTIONS or npm_config_* from it, and writes into their home.

# clean COMMAND...: runs COMMAND as root with none of that: the fixed PATH and root's HOME (and, in the
# simulated-Mac tests only, the variables its fakes need).
clean() {
	env -i PATH="$PATH" HOME=/var/root ${CONFINE_SIM_BIN:+"CONFINE_SIM_BIN=$CONFINE_SIM_BIN"} \
		${CONFINE_SIM_BIN:+"SIM_LIB=${SIM_LIB-}"} ${CONFINE_SIM_BIN:+"SIM_STATE=${SIM_STATE-}"} "$@"
}

# as_agent COMMAND...: runs COMMAND as the agent (its UID, GID and groups), never as root, within 60 s.
as_agent() { as_agent_within 60 "$@"; }

# What every sh script run as the agent starts with: fixed PATH, owner-only new files, no globbing.
AGENT_SH='set -euf; PATH=/usr/bin:/bin; umask 077; '

# as_agent_within SECONDS COMMAND...: as_agent, bounded by SECONDS. Everything the agent runs is the
# agent's to stop, stall or hang (a FIFO read, a stuck CLI, a SIGSTOP from its own gateway): a run that
# times out is killed with every process of the agent's UID, and the script fails.
as_agent_within() {
	awsecs=$1
	shift
	awstatus=0
	bounded "$awsecs" sudo -n -u "$A_NAME" "$@" || awstatus=$?
	if [ -n "$BOUNDED_TIMED_OUT" ]; then
		pkill -KILL -U "$A_UID" || :
		fail "ended every process of $A_NAME (UID $A_UID), which stalled ${STEP:-a step}"
	fi
	return "$awstatus"
}

# bounded SECONDS COMMAND...: runs the external COMMAND (not a function: the signal must reach it) with
# this standard input; after SECONDS it gets SIGTERM, 5 s later SIGKILL (a stopped process ignores TERM),
# and the step that timed out (STEP) is reported. BOUNDED_TIMED_OUT is then set. macOS has no
# timeout(1); /bin/sleep: the simulated Mac's sleep on PATH returns at once.
bounded() {
	bsecs=$1
	shift
	BOUNDED_TIMED_OUT=
	exec 9<&0
	"$@" <&9 &
	bpid=$!
	(
		trap 'kill "$bsleep"; exit 0' TERM
		/bin/sleep "$bsecs" &
		bsleep=$!
		wait "$bsleep"
		kill -TERM "$bpid"
		/bin/sleep 5 &
		bsleep=$!
		wait "$bsleep"
		kill -KILL "$bpid"
		exit 3
	) >/dev/null 2>&1 &
	bwatch=$!
	bstatus=0
	wait "$bpid" || bstatus=$?
	kill "$bwatch" 2>/dev/null || :
	bwatched=0
	wait "$bwatch" || bwatched=$?
	exec 9<&-
	if [ "$bwatched" -eq 3 ]; then
		BOUNDED_TIMED_OUT=1
		printf 'confine: %s timed out after %s seconds: %s was ended\n' "${STEP:-a step}" "$bsecs" "$1" >&2
	fi
	return "$bstatus"
}

# Work in the agent's own trees (home, .ssh, .openclaw, secret files) runs as the agent: root never opens,
# chowns or chmods a path there, so a link, FIFO or hard link the agent planted can only ever reach what
# the agent could reach anyway. Content goes over on standard input.

# as_agent_sh SCRIPT [ARG...]: runs the constant sh SCRIPT as the agent, ARGs as $1..., PATH fixed, umask 077.
as_agent_sh() {
	agent_script=$1
	shift
	as_agent /bin/sh -c "$AGENT_SH$agent_script" sh "$@"
}

# The agent side of make_way: PATH ($1) must be a real folder ($2 = dir) or a regular file the agent
# owns with a single link ($2 = file), or be absent. Anything else (a link, FIFO, socket, device, folder,
# another account's file) is renamed to PATH.confine-moved, which never opens it, and logged.
# shellcheck disable=SC2016 # expanded by the agent's shell
MAKE_WAY='p=$1
if [ -L "$p" ]; then bad="a symbolic link"
elif [ ! -e "$p" ]; then exit 0
elif [ "$2" = dir ]; then
	if [ -d "$p" ]; then exit 0; fi
	bad="not a folder"
elif [ ! -f "$p" ]; then bad="not a regular file"
else
	set -- $(ls -ldn "$p")
	if [ "$2" = 1 ] && [ "$3" = "$(id -u)" ]; then exit 0; fi
	bad="a hard link or another account'"'"'s file"
fi
rm -rf "$p.confine-moved"
mv -f "$p" "$p.confine-moved"
printf "confine: moved %s aside to %s.confine-moved: it was %s\n" "$p" "$p" "$bad"'

# make_way PATH dir|file: as the agent, clears PATH of anything that does not belong there (MAKE_WAY).
make_way() { as_agent_sh "$MAKE_WAY" "$1" "$2"; }

# set_aside PATH WHY: as the agent, whatever is at PATH is renamed to PATH.confine-moved, and logged.
set_aside() {
	# shellcheck disable=SC2016 # expanded by the agent's shell
	as_agent_sh '[ -e "$1" ] || [ -L "$1" ] || exit 0
rm -rf "$1.confine-moved"
mv -f "$1" "$1.confine-moved"
printf "confine: moved %s aside to %s.confine-moved: it was %s\n" "$1" "$1" "$2"' "$1" "$2"
}

# agent_dir MODE PATH: as the agent, a real folder at PATH with MODE.
agent_dir() {
	make_way "$2" dir
	# shellcheck disable=SC2016
	as_agent_sh 'mkdir -p "$1" && chmod "$2" "$1"' "$2" "$1"
}

# agent_write MODE PATH: as the agent, replaces PATH with standard input (written beside it, renamed over
# it), within 60 s: rotation runs beside a live agent, which could put a FIFO where the new file goes.
agent_write() {
	make_way "$2" file
	# shellcheck disable=SC2016
	as_agent_within 60 /bin/sh -c "$AGENT_SH"'rm -rf "$1.confine-new"; cat >"$1.confine-new"; chmod "$2" "$1.confine-new"; mv -f "$1.confine-new" "$1"' sh "$2" "$1"
}

# agent_keep MODE PATH: as the agent, keeps a good existing file at PATH with MODE; true if there is one.
agent_keep() {
	make_way "$2" file
	# shellcheck disable=SC2016
	as_agent_sh '[ -f "$1" ] || exit 1; chmod "$2" "$1"' "$2" "$1"
}

# place_token FILE: root's copy FILE becomes the agent's gateway token at A_TOKEN_PATH, in root's folder of
# the agent (the config folder). OpenClaw's file SecretRef wants the file the agent's and unreadable to
# others, so it is the agent's, 0400, and system-immutable (schg), which only root can clear: the agent
# reads its token but can never write, rename or replace it (nor put back an old one after a rotation).
place_token() {
	token=$T$A_TOKEN_PATH
	if [ -e "$token" ] || [ -L "$token" ]; then
		chflags -h noschg "$token"
	fi
	cp "$1" "$WORK/token-placed"
	place "$WORK/token-placed" "$token" "$A_UID:$A_GID" 400
	chflags schg "$token"
}

# record FILE RECORD: keeps a copy of FILE, something root made, as RECORD in root's own root-only record
# (records/ in the support folder), which the agent can neither read nor change.
record() {
	(
		umask 077
		mkdir -p "${2%/*}"
		cp "$1" "$2"
	)
}

# The agent's OpenClaw: OPENCLAW_PACKAGE is the package of the version being installed, and openclaw_cli
# runs its CLI as the agent, with the daemon's environment (config read-only, no self-update, no service
# repair), so every check sees what the daemon will see.
openclaw_package() {
	case $A_INSTALL in
	npm) OPENCLAW_PACKAGE=$T$A_PREFIX/versions/$A_OPENCLAW_VERSION/lib/node_modules/openclaw ;;
	bundle) OPENCLAW_PACKAGE=$T$A_PREFIX/node_modules/openclaw ;;
	*) OPENCLAW_PACKAGE=$T$A_PREFIX/lib/node_modules/openclaw ;;
	esac
}

openclaw_cli() {
	as_agent_within 600 env -i HOME="$T$A_HOME" PATH="$T${A_NODE%/*}:/usr/bin:/bin:/usr/sbin:/sbin" \
		OPENCLAW_CONFIG_PATH="$T$A_CONFIG_PATH" OPENCLAW_STATE_DIR="$T$A_STATE_DIR" \
		OPENCLAW_CONFIG_READONLY=1 OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_SERVICE_REPAIR_POLICY=external \
		"$T$A_NODE" "$OPENCLAW_PACKAGE/openclaw.mjs" "$@"
}

# lifecycle_pending PACKAGE: true while OpenClaw would refuse to run from PACKAGE because its package
# lifecycle is unfinished (the markers its launcher checks, or a lifecycle still holding its lock).
lifecycle_pending() {
	[ -e "$1/.openclaw-lifecycle-pending" ] || [ -e "$1/dist/openclaw-install-guard" ] ||
		[ -e "$1/.openclaw-lifecycle-lock" ]
}

# complete_lifecycle PACKAGE SCRATCH NOTE: with npm's scripts off (or a bundle laid out at build time),
# OpenClaw's own package lifecycle (its preinstall and postinstall, package-local files only) is left
# pending, and every later run as the agent would fail (EACCES: the agent cannot finish it in a root-owned
# folder). OpenClaw's launcher completes a pending lifecycle on its first run, so it runs once here, as
# root, on the Mac's node (the lifecycle checks the node and native addons of the machine it runs on),
# before the folder is handed to the agent, with a throw-away HOME, TMPDIR and state in SCRATCH (a new
# folder in a root-only one) so nothing of root's is touched and no shared /tmp path is used. node's
# folder is on PATH for npm installs only: a bundle's lifecycle finds no npm, so it never reaches a
# registry. A failure message ends with NOTE.
complete_lifecycle() {
	lifecycle_path=/usr/bin:/bin:/usr/sbin:/sbin
	if [ "$A_INSTALL" = npm ]; then
		lifecycle_path=$T${A_NODE%/*}:$lifecycle_path
	fi
	mkdir -m 700 "$2"
	env -i HOME="$2" TMPDIR="$2" PATH="$lifecycle_path" OPENCLAW_STATE_DIR="$2/state" OPENCLAW_NO_AUTO_UPDATE=1 \
		"$T$A_NODE" "$1/openclaw.mjs" --version >&2 ||
		fail "OpenClaw $A_OPENCLAW_VERSION could not complete its package lifecycle (agent $A_NAME)$3"
	rm -rf "$2"
	if lifecycle_pending "$1"; then
		fail "OpenClaw $A_OPENCLAW_VERSION's package lifecycle is still incomplete after its first run (agent $A_NAME)$3"
	fi
}

# package_field PACKAGE_JSON KEY: the first `"KEY": "value"` of an npm package.json (npm writes one key
# per line), e.g. version; `engines.node` reads the "node" inside "engines".
package_field() {
	awk -v key="$2" '
		function value(line) { sub(/^[^:]*:[[:space:]]*"/, "", line); sub(/".*$/, "", line); return line }
		key == "engines.node" && /^[[:space:]]*"engines"[[:space:]]*:/ { inside = 1 }
		inside && /^[[:space:]]*"node"[[:space:]]*:/ { print value($0); exit }
		inside && /}/ { inside = 0 }
		key != "engines.node" && $0 ~ "^[[:space:]]*\"" key "\"[[:space:]]*:[[:space:]]*\"" { print value($0); exit }
	' "$1"
}

# node_satisfies VERSION RANGE: whether VERSION (e.g. 24.22.3) is in an npm `engines` RANGE made of
# comparators (>=, >, <=, <, =, or a bare version; missing parts are 0) joined by spaces and `||`.
# Anything else (^, ~, x-ranges, hyphens) is refused: the check fails closed.
node_satisfies() {
	awk -v have="$1" -v range="$2" '
		function cmp(a, b,   x, y, i) {
			split(a, x, "."); split(b, y, ".")
			for (i = 1; i <= 3; i++) {
				if (x[i] + 0 > y[i] + 0) return 1
				if (x[i] + 0 < y[i] + 0) return -1
			}
			return 0
		}
		function holds(c,   op, v, r) {
			op = c; sub(/[0-9].*$/, "", op); v = substr(c, length(op) + 1)
			if (v !~ /^[0-9]+(\.[0-9]+)?(\.[0-9]+)?$/) exit 2
			r = cmp(have, v)
			if (op == ">=") return r >= 0
			if (op == ">") return r > 0
			if (op == "<=") return r <= 0
			if (op == "<") return r < 0
			if (op == "=" || op == "") return r == 0
			exit 2
		}
		BEGIN {
			n = split(range, alternatives, /[[:space:]]*\|\|[[:space:]]*/)
			for (i = 1; i <= n; i++) {
				m = split(alternatives[i], comparators, /[[:space:]]+/); ok = 1; seen = 0
				for (j = 1; j <= m; j++) if (comparators[j] != "") { seen = 1; if (!holds(comparators[j])) ok = 0 }
				if (seen && ok) exit 0
			}
			exit 1
		}'
}

# json_str VALUE: VALUE as a JSON string. awk reads it from the environment, which (unlike -v) keeps
# backslashes as they are.
json_str() {
	CONFINE_JSON=$1 awk 'BEGIN {
		s = ENVIRON["CONFINE_JSON"]; out = ""
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "\\") c = "\\\\"
			else if (c == "\"") c = "\\\""
			else if (c == "\n") c = "\\n"
			else if (c == "\t") c = "\\t"
			else if (c == "\r") c = "\\r"
			out = out c
		}
		printf "\"%s\"", out
	}'
}

# quiesce: boots the agent's daemon out and ends every process of its UID, waiting (bounded); fails, with
# nothing of the agent's touched yet, if one survives. Root touches nothing of an existing agent before.
quiesce() {
	stop_daemon
	qi=0
	while pgrep -U "$A_UID" >/dev/null; do
		if [ "$qi" -eq 0 ]; then
			log "ending every process of $A_NAME (UID $A_UID)"
		elif [ "$qi" -ge 30 ]; then
			fail "processes of $A_NAME (UID $A_UID) still run 30 seconds after SIGKILL; nothing of $A_NAME was changed"
		fi
		pkill -KILL -U "$A_UID" || :
		qi=$((qi + 1))
		sleep 1
	done
}

# unflag PATH [FIND-TEST...]: root clears the user-immutable flag (the owner may set it; root's rm, mv,
# chown and chmod then fail) from every name under PATH that passes FIND-TEST, never following a link
# (find -execdir, chflags -h), and the system-immutable flag root set (the token). Only after quiesce,
# so the agent cannot set it again meanwhile.
unflag() {
	ufpath=$1
	shift
	if [ -d "$ufpath" ] && [ ! -L "$ufpath" ]; then
		find "$ufpath" -xdev "$@" -execdir chflags -h nouchg,noschg {} + || :
	fi
}

# unflag_agent: after quiesce, the agent's own trees lose every flag (its home, its logs, its files in
# its workspace, and its token in root's folder of it), before root changes anything there.
unflag_agent() {
	unflag "$T$A_HOME"
	unflag "$T$A_LOG_DIR"
	unflag "$T$A_CONFIG_DIR" -maxdepth 1 -name gateway-token
	unflag "$T$A_WORKSPACE" -user "$A_UID"
}

# root_only FOLDER: FOLDER is a real folder of root's that no one else can write (group write only for
# wheel or admin, whose members are root already).
root_only() {
	file_info "$1" | awk '{ p = $1 }
		substr(p, 1, 1) == "d" && $2 == 0 && substr(p, 9, 1) != "w" && (substr(p, 6, 1) != "w" || $3 == 0 || $3 == 80) { ok = 1 }
		END { exit !ok }'
}

# root_dir OWNER MODE PATH: root makes (or keeps) the folder PATH and sets its owner and mode, only where no
# one but root can swap it: every folder above it is root_only (missing ones are made so), else it fails;
# PATH itself must be a real folder (lstat), never a link.
root_dir() {
	rd=$T
	rest=${3#/}
	while :; do
		if ! root_only "${rd:-/}"; then
			fail "${rd#"$T"}/ is not root's alone (another account owns or can write it); refusing to create $3 under it"
		fi
		rd=$rd/${rest%%/*}
		case $rest in */*) rest=${rest#*/} ;; *) break ;; esac
		if [ ! -e "$rd" ] && [ ! -L "$rd" ]; then
			mkdir -m 755 "$rd"
		fi
	done
	if [ -L "$rd" ] || { [ -e "$rd" ] && [ ! -d "$rd" ]; }; then
		fail "$3 is not a folder; refusing to use it"
	fi
	[ -d "$rd" ] || mkdir -m 700 "$rd"
	chown -h "$1" "$rd"
	chmod "$2" "$rd"
}

# Root's record of each installed agent (records/<name>/, root-only, one file per field, beside the public
# keys root generated): what removing the agent later needs. Removal reads it, never a path the agent can
# write, and it stays right when a later release drops the agent from the data file.
RECORD_FIELDS='uid gid group home workspace logs label plist prefix config'

# record_agent: writes the record of the agent A_* describes.
record_agent() {
	rdir=$T$SUPPORT_DIR/records/$A_NAME
	(
		umask 077
		mkdir -p "$rdir"
		printf '%s' "$A_UID" >"$rdir/uid"
		printf '%s' "$A_GID" >"$rdir/gid"
		printf '%s' "$A_GROUP" >"$rdir/group"
		printf '%s' "$A_HOME" >"$rdir/home"
		printf '%s' "$A_WORKSPACE" >"$rdir/workspace"
		printf '%s' "$A_LOG_DIR" >"$rdir/logs"
		printf '%s' "$A_LABEL" >"$rdir/label"
		printf '%s' "$A_PLIST" >"$rdir/plist"
		printf '%s' "$A_PREFIX" >"$rdir/prefix"
		printf '%s' "$A_CONFIG_DIR" >"$rdir/config"
	)
}

# record_field NAME FIELD: REPLY = the field of agent NAME's record.
record_field() {
	REPLY=$(
		cat "$T$SUPPORT_DIR/records/$1/$2"
		printf x
	)
	REPLY=${REPLY%x}
}

# each_recorded_agent FUNCTION: runs FUNCTION once per agent in root's record, with A_* loaded from it.
each_recorded_agent() {
	[ -d "$T$SUPPORT_DIR/records" ] || return 0
	# shellcheck disable=SC2045 # agent names: no blanks, newlines or globs
	for recorded in $(ls -A "$T$SUPPORT_DIR/records"); do
		if [ -f "$T$SUPPORT_DIR/records/$recorded/uid" ]; then
			load_record "$recorded"
			"$1"
		fi
	done
}

load_record() {
	A_NAME=$1
	for rf in $RECORD_FIELDS; do
		record_field "$1" "$rf"
		case $rf in
		uid) A_UID=$REPLY ;;
		gid) A_GID=$REPLY ;;
		group) A_GROUP=$REPLY ;;
		home) A_HOME=$REPLY ;;
		workspace) A_WORKSPACE=$REPLY ;;
		logs) A_LOG_DIR=$REPLY ;;
		label) A_LABEL=$REPLY ;;
		plist) A_PLIST=$REPLY ;;
		prefix) A_PREFIX=$REPLY ;;
		config) A_CONFIG_DIR=$REPLY ;;
		esac
	done
}

# The places an account leaves files in beside its own trees: shared folders, caches, and its per-user
# folders under /private/var/folders (DARWIN_USER_TEMP_DIR and DARWIN_USER_CACHE_DIR).
SHARED_PLACES='/Users/Shared /private/tmp /private/var/tmp /Library/Caches /private/var/folders'

# remove_agent: removes the agent A_* describes (from root's record) as completely as uninstall does:
# quiesced first, then its daemon, files, group memberships, account, personal group and record. What is
# kept (a workspace in use, files it left in shared places) is handed to root and listed. The account goes
# last, after a check that its UID owns nothing left: a failure leaves a whole agent a rerun removes.
remove_agent() {
	stop_agent
	unflag_agent
	if [ -d "$T$A_WORKSPACE" ] && [ ! -L "$T$A_WORKSPACE" ] && ! rmdir "$T$A_WORKSPACE" 2>/dev/null; then
		log "kept the workspace $A_WORKSPACE: it is not empty"
	fi
	hand_over
	rm -f "$T$A_PLIST"
	remove_agent_files
	leave_groups
	if ds_get "/Users/$A_NAME" UniqueID; then
		log "deleting the account $A_NAME"
		dscl . -delete "/Users/$A_NAME"
	fi
	remove_personal_group
	rm -rf "$T$SUPPORT_DIR/records/${A_NAME:?}"
}

# stop_agent: root's jobs for the agent stopped, then every process of it ended. A removal of several
# agents runs it for all of them before it walks any one's files: no agent races another's removal.
stop_agent() {
	remove_root_jobs_of_agent
	quiesce
}

# remove_root_jobs_of_agent: root's jobs that act for the agent (credential rotation,
# <identifier>.<agent>.rotate-*) are stopped and their plists removed, so none acts as the agent while it
# goes. /Library/LaunchDaemons is root's, so the names found there are root's too.
remove_root_jobs_of_agent() {
	# shellcheck disable=SC2045 # launchd labels: no blanks, newlines or globs
	for job in $(ls -A "$T/Library/LaunchDaemons"); do
		case $job in
		*".$A_NAME.rotate-"*.plist) job_label=${job%.plist} ;;
		*) continue ;;
		esac
		if daemon_loaded "$job_label"; then
			log "stopping $job_label"
			launchctl bootout "system/$job_label" || :
			wait_unloaded "$job_label"
		fi
		rm -f "$T/Library/LaunchDaemons/$job"
	done
}

# Paths are deleted only where they are provably the agent's: its home only while the agent's UID owns
# it, and a custom OpenClaw prefix only OpenClaw's part of it (it may be shared, e.g. /usr/local).
# rm -rf never follows a link.
remove_agent_files() {
	if [ -d "$T$A_HOME" ] && [ ! -L "$T$A_HOME" ] && [ "$(file_info "$T$A_HOME" | awk '{ print $2 }')" = "$A_UID" ]; then
		rm -rf "$T$A_HOME"
	fi
	case $A_HOME in
	/private/var/confine/*/*) rmdir "$T${A_HOME%/*}" "$T/private/var/confine" 2>/dev/null || : ;;
	esac
	rm -rf "$T$A_PREFIX/versions" "$T$A_PREFIX/lib/node_modules/openclaw"
	rm -f "$T$A_PREFIX/current" "$T$A_PREFIX/bin/openclaw"
	rmdir "$T$A_PREFIX/lib/node_modules" "$T$A_PREFIX/lib" "$T$A_PREFIX/bin" "$T$A_PREFIX" 2>/dev/null || :
	rm -rf "$T$A_LOG_DIR" "$T$A_CONFIG_DIR"
}

# hand_over: no file in the workspace or the shared places is left to the agent's UID, which a later
# account may reuse. The agent first drops the set-ID bits of its own files (as the agent: a link reaches
# only its own files); then root hands each one to root (its group too where it is the agent's) from
# inside its folder (find -execdir, chown -h), so no link, in the name or above it, is followed. Each is
# listed. If one is left, it fails before the account goes.
hand_over() {
	for place in "$A_WORKSPACE" $SHARED_PLACES; do
		if [ -d "$T$place" ] && [ ! -L "$T$place" ]; then
			unflag "$T$place" -user "$A_UID"
			if ds_get "/Users/$A_NAME" UniqueID; then
				# shellcheck disable=SC2016 # expanded by the agent's shell
				as_agent_sh 'find "$1" -xdev -type f -user "$(id -u)" \( -perm -4000 -o -perm -2000 \) -exec chmod ug-s {} + 2>/dev/null || :' "$T$place"
			else
				find "$T$place" -xdev -type f -user "$A_UID" \( -perm -4000 -o -perm -2000 \) -execdir chmod ug-s {} + || :
			fi
			find "$T$place" -xdev -user "$A_UID" -print | while IFS= read -r handed; do
				log "handed to root: ${handed#"$T"}"
			done
			find "$T$place" -xdev -user "$A_UID" -group "$A_GID" -execdir chown -h 0:0 {} + || :
			find "$T$place" -xdev -user "$A_UID" -execdir chown -h 0 {} + || :
			if [ -n "$(find "$T$place" -xdev -user "$A_UID" -print | head -n 1)" ]; then
				fail "files in $place still belong to $A_NAME (UID $A_UID) after the hand-over; the account is kept: run this again"
			fi
		fi
	done
}

# leave_groups: the agent leaves every group that lists it.
leave_groups() {
	dscl . -list /Groups GroupMembership | while read -r lgroup lmembers; do
		for member in $lmembers; do
			if [ "$member" = "$A_NAME" ]; then
				log "removing $A_NAME from group $lgroup"
				dseditgroup -o edit -d "$A_NAME" -t user "$lgroup"
			fi
		done
	done
}

# remove_personal_group: the agent's primary group goes with it, unless this release still defines it
# or an account still has it as primary group.
remove_personal_group() {
	if ! listed GROUP "$A_GROUP" && ds_get "/Groups/$A_GROUP" PrimaryGroupID &&
		[ -z "$(dscl . -list /Users PrimaryGroupID | awk -v gid="$A_GID" '$2 == gid { print $1 }')" ]; then
		log "deleting group $A_GROUP"
		dseditgroup -o delete "$A_GROUP"
	fi
}
