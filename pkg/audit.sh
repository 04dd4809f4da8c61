# shellcheck shell=sh
# confine: the audit trail's steps (agents[].audit; the design is in src/audit/mod.rs). Sourced by
# postinstall and uninstall after lib.sh, never run. Root acts only in root's own folder
# (/private/var/log/confine/<fleet>, 0700): the agent cannot reach anything there, not even by name.

# start_audit: the root-only folder and eslogger's FIFO, then the collector and eslogger (in that order:
# launchd opens eslogger's stdout, the FIFO, and waits there for the reader). A release that turns the
# audit off stops both daemons and keeps the trail.
start_audit() {
	if [ "$AUDIT_AGENT_COUNT" -eq 0 ]; then
		stop_audit
		return 0
	fi
	ensure_dir 0:0 700 "$T${AUDIT_DIR%/*}"
	ensure_dir 0:0 700 "$T$AUDIT_DIR"
	if [ ! -p "$T$AUDIT_FIFO" ] || [ -L "$T$AUDIT_FIFO" ]; then
		rm -rf "$T$AUDIT_FIFO"
		mkfifo -m 600 "$T$AUDIT_FIFO"
	fi
	load_audit_daemon "$AUDIT_COLLECTOR_LABEL" "$AUDIT_COLLECTOR_PLIST"
	load_audit_daemon "$AUDIT_ESLOGGER_LABEL" "$AUDIT_ESLOGGER_PLIST"
}

# load_audit_daemon LABEL PLIST: an unchanged, loaded daemon is restarted (the collector rereads the
# fleet data); otherwise it is booted out and bootstrapped again. loaded-<label>.plist, in the root-only
# folder, is the definition launchd has.
load_audit_daemon() {
	own 0:0 644 "$T$2"
	loaded=$T$AUDIT_DIR/loaded-$1.plist
	if [ -f "$loaded" ] && cmp -s "$loaded" "$T$2" && daemon_loaded "$1"; then
		log "$1 is unchanged: restarting it"
		launchctl kickstart -k "system/$1"
		return 0
	fi
	unload_audit_daemon "$1"
	launchctl enable "system/$1"
	log "loading $1"
	bootstrap "$1" "$T$2"
	cp "$T$2" "$loaded"
}

unload_audit_daemon() {
	if daemon_loaded "$1"; then
		log "stopping $1"
		launchctl bootout "system/$1" || :
		wait_unloaded "$1"
	fi
}

# stop_audit: both daemons out and their plists gone. The trail itself stays: it is the record of what
# the agents did, and an admin deletes it (sudo rm -r /private/var/log/confine/<fleet>) when done with it.
stop_audit() {
	for role in eslogger collector; do
		label=$PKG_IDENTIFIER.audit.$role
		unload_audit_daemon "$label"
		rm -f "$T/Library/LaunchDaemons/$label.plist"
	done
}

# remove_audit (uninstall): the daemons go, and so do the FIFO and the loaded copies. The trail stays,
# root's alone, for whoever investigates what the removed agents did; an empty folder goes.
remove_audit() {
	stop_audit
	if [ "$AUDIT_AGENT_COUNT" -gt 0 ]; then
		rm -f "$T$AUDIT_FIFO" "$T$AUDIT_DIR/loaded-$AUDIT_ESLOGGER_LABEL.plist" \
			"$T$AUDIT_DIR/loaded-$AUDIT_COLLECTOR_LABEL.plist"
		if rmdir "$T$AUDIT_DIR" 2>/dev/null; then
			rmdir "$T${AUDIT_DIR%/*}" 2>/dev/null || :
		else
			log "kept the audit trail in $AUDIT_DIR (root-only): delete it when done with it"
		fi
	fi
}
