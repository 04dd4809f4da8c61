# shellcheck shell=sh disable=SC2034,SC2153,SC2154
# (SC2034, SC2153, SC2154: this file sets and reads variables shared with lib.sh and the scripts that source it.)
# confine: root's record of the agents' credentials, shared by postinstall and rotate. Sourced
# after lib.sh, never run.
#
# Root's record (records/<agent>/ in the support folder, root-only) holds what root made: the public half
# of each deploy key (<key>.pub), a pending replacement during a staged rotation (<key>.pending.pub), the
# gateway token (gateway-token), and when each credential was last replaced (rotated/<credential>). The
# inventory and status.json are written from it, never from a file the agent can change.

# records_of AGENT: RECORD = the agent's folder in root's record.
records_of() { RECORD=$T$SUPPORT_DIR/records/$1; }

# K_* from AGENT_<ai>_SSH_KEY_N_*.
load_ssh_key() {
	field AGENT "$ai" "SSH_KEY_$1_PATH"
	K_PATH=$REPLY
	K_NAME=${K_PATH##*/}
	field AGENT "$ai" "SSH_KEY_$1_HOST"
	K_HOST=$REPLY
	field AGENT "$ai" "SSH_KEY_$1_HOSTNAME"
	K_HOSTNAME=$REPLY
	field AGENT "$ai" "SSH_KEY_$1_USER"
	K_USER=$REPLY
	field AGENT "$ai" "SSH_KEY_$1_COMMENT"
	K_COMMENT=$REPLY
}

# each_ssh_key FUNCTION: runs FUNCTION once per deploy key of the loaded agent, with K_* loaded.
each_ssh_key() {
	ki=1
	while [ "$ki" -le "$A_SSH_KEY_COUNT" ]; do
		load_ssh_key "$ki"
		"$1"
		ki=$((ki + 1))
	done
}

# stamp_rotation CREDENTIAL: records now as the time the loaded agent's CREDENTIAL (gateway-token,
# ssh-key/<name>, secret/<name>) was last replaced.
stamp_rotation() {
	records_of "$A_NAME"
	(
		umask 077
		stamp=$RECORD/rotated/$1
		mkdir -p "${stamp%/*}"
		date -u +%Y-%m-%dT%H:%M:%SZ >"$stamp"
	)
}

# public-keys.txt: "<agent> <key name> <public key>" per line, for MDM inventory scripts (deploy keys
# must be registered with the forge). A key waiting to replace one (a staged rotation) is listed beside
# it as "<agent> <key name>.pending <public key>". From root's own record only.
write_public_keys() {
	: >"$WORK/public-keys.txt"
	each_agent append_public_keys
	place "$WORK/public-keys.txt" "$T$SUPPORT_DIR/public-keys.txt" 0:0 644
}

append_public_keys() { each_ssh_key append_public_key; }

append_public_key() {
	records_of "$A_NAME"
	public_line "$RECORD/$K_NAME.pub" "$K_NAME" >>"$WORK/public-keys.txt"
	if [ -f "$RECORD/$K_NAME.pending.pub" ]; then
		public_line "$RECORD/$K_NAME.pending.pub" "$K_NAME.pending" >>"$WORK/public-keys.txt"
	fi
}

# public_line FILE NAME: "<agent> NAME <type> <key> <comment>" from the first line of the public key
# FILE in root's record, the comment's unprintable characters as "?": one key, one line, whatever it says.
public_line() {
	LC_ALL=C awk -v agent="$A_NAME" -v name="$2" 'NR == 1 {
		comment = ""
		for (i = 3; i <= NF; i++) comment = comment " " $i
		gsub(/[^[:print:]]/, "?", comment)
		print agent, name, $1, $2 comment
		exit
	}' "$1"
}

# rotation_json: the "rotation" member of status.json (its last one): per agent and credential, when it
# was last replaced (null: not since root kept records) and, for deploy keys, whether a replacement
# waits for the forge. An MDM reports stale secrets from it.
rotation_json() {
	printf '  "rotation": ['
	sep=
	each_agent agent_rotation_json
	printf '\n  ]\n'
}

agent_rotation_json() {
	records_of "$A_NAME"
	rotated_json gateway-token
	each_ssh_key key_rotation_json
	si=1
	while [ "$si" -le "$A_SECRET_COUNT" ]; do
		field AGENT "$ai" "SECRET_${si}_PATH"
		rotated_json "secret/${REPLY##*/}"
		si=$((si + 1))
	done
}

key_rotation_json() {
	pending=false
	if [ -f "$RECORD/$K_NAME.pending.pub" ]; then
		pending=true
	fi
	rotated_json "ssh-key/$K_NAME" ", \"pending\": $pending"
}

# rotated_json CREDENTIAL [EXTRA]: one entry of the loaded agent (records_of ran).
rotated_json() {
	when=null
	if [ -f "$RECORD/rotated/$1" ]; then
		when=$(json_str "$(head -c 64 "$RECORD/rotated/$1")")
	fi
	printf '%s\n    {"agent": %s, "credential": %s, "rotated": %s%s}' "$sep" \
		"$(json_str "$A_NAME")" "$(json_str "$1")" "$when" "${2:-}"
	sep=,
}

# R_* from AGENT_<ai>_ROTATION_N_*: one of the agent's rotation daemons (see `rotate`).
load_rotation() {
	field AGENT "$ai" "ROTATION_$1_LABEL"
	R_LABEL=$REPLY
	field AGENT "$ai" "ROTATION_$1_PLIST"
	R_PLIST=$REPLY
	field AGENT "$ai" "ROTATION_$1_ENABLED"
	R_ENABLED=$REPLY
}

# each_rotation FUNCTION: runs FUNCTION once per rotation daemon of the loaded agent, with R_* loaded.
each_rotation() {
	rti=1
	while [ "$rti" -le "$A_ROTATION_COUNT" ]; do
		load_rotation "$rti"
		"$1"
		rti=$((rti + 1))
	done
}

# install_rotation: the loaded agent's rotation daemons, each enabled one loaded (again only when its
# plist changed), each disabled one an earlier release installed removed; and the root-owned folder where
# the admin's tooling marks deploy keys as registered with the forge.
install_rotation() {
	if [ "$A_SSH_KEY_COUNT" -gt 0 ]; then
		ensure_dir 0:0 755 "$T$A_REGISTERED_KEYS"
	fi
	each_rotation install_rotation_daemon
}

install_rotation_daemon() {
	records_of "$A_NAME"
	loaded=$RECORD/$R_LABEL.plist
	if [ "$R_ENABLED" != true ]; then
		remove_rotation_daemon
	elif ! daemon_loaded "$R_LABEL" || ! cmp -s "$loaded" "$T$R_PLIST"; then
		remove_rotation_daemon keep-plist
		log "loading $R_LABEL"
		own 0:0 644 "$T$R_PLIST"
		launchctl enable "system/$R_LABEL"
		bootstrap "$R_LABEL" "$T$R_PLIST"
		record "$T$R_PLIST" "$loaded"
	fi
}

# remove_rotation_daemon [keep-plist]: boots the daemon out if loaded, and removes its plist. Nothing to
# do without a plist: only a release that had it enabled installed one.
remove_rotation_daemon() {
	if [ ! -f "$T$R_PLIST" ]; then
		return 0
	elif daemon_loaded "$R_LABEL"; then
		log "stopping $R_LABEL"
		launchctl bootout "system/$R_LABEL" || :
		wait_unloaded "$R_LABEL"
	fi
	if [ -z "${1:-}" ]; then
		rm -f "$T$R_PLIST"
	fi
}
