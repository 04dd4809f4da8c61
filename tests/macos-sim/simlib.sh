# shellcheck shell=sh
# Shared by the fakes: the command log and small helpers. SIM_STATE is the per-test state folder.
: "${SIM_STATE:?SIM_STATE must point at the simulation state}"

# sim_log ARGV...: appends the command line, shell-quoted where needed, to the command log.
sim_log() {
	line=
	for arg in "$@"; do
		case $arg in
		'' | *[!A-Za-z0-9_./:=@%+,-]*) arg="'$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'" ;;
		esac
		line="${line:+$line }$arg"
	done
	printf '%s\n' "$line" >>"$SIM_STATE/commands.log"
}

die() {
	printf '%s\n' "$*" >&2
	exit 1
}

# ds_value KIND NAME ATTRIBUTE: prints the stored value (fails if absent).
ds_value() {
	[ -f "$SIM_STATE/ds/$1/$2/$3" ] && cat "$SIM_STATE/ds/$1/$2/$3"
}

# ds_member USER GROUP: explicit (GroupMembership) or primary-group membership.
ds_member() {
	grep -qxF "$1" "$SIM_STATE/ds/Groups/$2/GroupMembership" 2>/dev/null && return 0
	gid=$(ds_value Users "$1" PrimaryGroupID) || return 1
	[ -n "$gid" ] && [ "$gid" = "$(ds_value Groups "$2" PrimaryGroupID)" ]
}
