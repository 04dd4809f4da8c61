# shellcheck shell=sh
# confine egress filtering (src/egress.rs): the fleet's pf anchor and its watchdog. Sourced after lib.sh
# by postinstall, uninstall and the watchdog. All of it runs as root and reads only root-owned files
# (fleet-data.sh, the anchor, EGRESS_STATE_DIR) and root's own resolver: nothing the agent can write or
# answer. Every read of resolver output is bounded.

# pf_anchor PFCTL-ARGS...: pfctl inside the fleet's anchor.
pf_anchor() { pfctl -a "$EGRESS_ANCHOR" "$@"; }

pf_enabled() { pfctl -s info 2>/dev/null | grep -q '^Status: Enabled'; }

# apple_anchor_hooked: pf's main ruleset evaluates the com.apple/* anchors, the fleet's among them (Apple's
# stock rules, capture pfctl-s-rules--01.txt: `anchor "com.apple/*" all`).
apple_anchor_hooked() { pfctl -s rules 2>/dev/null | head -c 1000000 | grep -q '^anchor "com.apple/\*"'; }

# anchor_loaded: the anchor holds rules (an OS update or `pfctl -F all` empties it).
anchor_loaded() { pf_anchor -s rules 2>/dev/null | head -c 1000000 | grep -q '^block return'; }

# load_egress: E_* of the current agent (see load_agent) from AGENT_<ai>_EGRESS_*.
# shellcheck disable=SC2154 # ai: the agent's index, set by load_agent (lib.sh)
load_egress() {
	field AGENT "$ai" EGRESS
	E_ON=$REPLY
	if [ "$E_ON" != true ]; then
		return 0
	fi
	field AGENT "$ai" EGRESS_HOST_COUNT
	E_HOST_COUNT=$REPLY
	field AGENT "$ai" EGRESS_ALLOWED_HOST
	E_ALLOWED_HOST=$REPLY
	field AGENT "$ai" EGRESS_ALLOWED_PORT
	E_ALLOWED_PORT=$REPLY
	field AGENT "$ai" EGRESS_DENIED_ADDRESS
	E_DENIED_ADDRESS=$REPLY
}

# install_egress: postinstall's step. Loads this release's anchor, enables pf, fills the tables and
# (re)starts the watchdog; with no agent filtered, removes what an earlier release installed.
install_egress() {
	if [ "$EGRESS" != true ]; then
		remove_egress
		return 0
	fi
	egress_state_dir
	egress_enable
	log "loading the pf anchor $EGRESS_ANCHOR"
	egress_load
	egress_refresh
	load_watchdog
}

# load_watchdog: (re)loads the watchdog unless this very plist is loaded already (root keeps its own copy
# of the plist it loaded last), so a rerun does not re-register it with Background Task Management.
load_watchdog() {
	loaded=$T$EGRESS_STATE_DIR/loaded.plist
	if daemon_loaded "$EGRESS_LABEL" && cmp -s "$loaded" "$T$EGRESS_PLIST"; then
		return 0
	fi
	if daemon_loaded "$EGRESS_LABEL"; then
		launchctl bootout "system/$EGRESS_LABEL" || :
		wait_unloaded "$EGRESS_LABEL"
	fi
	log "loading $EGRESS_LABEL"
	launchctl enable "system/$EGRESS_LABEL"
	bootstrap "$EGRESS_LABEL" "$T$EGRESS_PLIST"
	cp "$T$EGRESS_PLIST" "$loaded"
}

# egress_watch: one round of the watchdog: pf on with its own reference, the fleet's anchor loaded, tables
# fresh. It never loads the main ruleset: a VPN or security tool may have replaced it with its own rules,
# which reloading /etc/pf.conf every five minutes would throw away. When the main ruleset has no
# `anchor "com.apple/*"` (capture pfctl-s-rules--01.txt), which evaluates the fleet's anchor, it says so.
egress_watch() {
	egress_state_dir
	egress_enable
	if ! apple_anchor_hooked; then
		log "WARNING: pf's main ruleset does not evaluate com.apple/*, so the egress allowlist is not enforced; it is not reloaded here (it may be another tool's): load /etc/pf.conf (sudo pfctl -f /etc/pf.conf) or add anchor \"com.apple/*\" to the rules that replaced it"
	fi
	if ! anchor_loaded; then
		log "the pf anchor $EGRESS_ANCHOR is empty (flushed): reloading it"
		egress_load
	fi
	egress_refresh
}

egress_state_dir() {
	(
		umask 077
		mkdir -p "$T$EGRESS_STATE_DIR/hosts"
	)
	own 0:0 700 "$T$EGRESS_STATE_DIR"
}

# egress_enable: pf enabled, holding the reference token this fleet took (`pfctl -E`). A plain `pfctl -d`
# disables pf and voids every token; whoever enabled it again may release theirs, so a token of ours that
# is gone from `pfctl -s References` is replaced. Tokens are 64-bit: awk compares them as strings, since as
# numbers (doubles) neighbouring tokens are equal.
egress_enable() {
	token_file=$T$EGRESS_STATE_DIR/pf-token
	token=$(head -c 64 "$token_file" 2>/dev/null) || token=
	if [ -n "$token" ] && pf_enabled && pfctl -s References 2>/dev/null | head -c 1000000 |
		awk -v t="$token" '{ for (i = 1; i <= NF; i++) if ($i "" == t "") found = 1 } END { exit !found }'; then
		return 0
	fi
	out=$(pfctl -E 2>&1) || fail "pfctl -E could not enable pf: $out"
	token=$(printf '%s\n' "$out" | awk '$1 == "Token" && $2 == ":" { print $3; exit }')
	case $token in
	'' | *[!0-9]*) fail "pfctl -E gave no reference token: $out" ;;
	esac
	printf '%s\n' "$token" >"$token_file.new"
	mv -f "$token_file.new" "$token_file"
	log "pf enabled, reference token $token"
}

egress_load() {
	out=$(pf_anchor -f "$T$EGRESS_ANCHOR_FILE" 2>&1) || fail "pfctl refused the anchor $EGRESS_ANCHOR: $out"
}

# egress_refresh: the resolvers' table, then each host name's table.
egress_refresh() {
	now=$(date +%s)
	egress_resolvers >"$T$EGRESS_STATE_DIR/dns"
	fill_table "$EGRESS_DNS_TABLE" "$T$EGRESS_STATE_DIR/dns"
	each_agent refresh_agent_tables
}

# shellcheck disable=SC2154 # ai: as in load_egress
refresh_agent_tables() {
	load_egress
	if [ "$E_ON" != true ]; then
		return 0
	fi
	hi=1
	while [ "$hi" -le "$E_HOST_COUNT" ]; do
		field AGENT "$ai" "EGRESS_HOST_${hi}_NAME"
		host=$REPLY
		field AGENT "$ai" "EGRESS_HOST_${hi}_TABLE"
		refresh_host "$host" "$REPLY"
		hi=$((hi + 1))
	done
}

# refresh_host HOST TABLE: TABLE holds HOST's current addresses. While HOST does not resolve, its last good
# addresses stay for at most EGRESS_ADDRESS_TTL seconds; then the table is empty until it resolves again.
refresh_host() {
	cache=$T$EGRESS_STATE_DIR/hosts/$2
	egress_resolve "$1" >"$cache.new"
	if [ -s "$cache.new" ]; then
		printf '%s\n' "$now" >"$cache.time"
		mv -f "$cache.new" "$cache"
	else
		rm -f "$cache.new"
		since=$(head -c 32 "$cache.time" 2>/dev/null) || since=
		case $since in '' | *[!0-9]*) since=0 ;; esac
		if [ -s "$cache" ] && [ $((now - since)) -le "$EGRESS_ADDRESS_TTL" ]; then
			log "$1 does not resolve: keeping its addresses from $((now - since)) s ago"
		else
			log "$1 does not resolve: table $2 stays empty until it does"
			: >"$cache"
		fi
	fi
	fill_table "$2" "$cache"
}

# fill_table TABLE FILE: the table's addresses become FILE's (one per line; none empties it).
fill_table() {
	out=$(pf_anchor -t "$1" -T replace -f "$2" 2>&1) || log "pfctl could not fill table $1: $out"
}

# egress_resolve HOST: HOST's addresses from the system resolver (dscacheutil asks mDNSResponder, as root),
# one per line, at most 64, each made only of the characters of an IPv4 or IPv6 address.
egress_resolve() {
	dscacheutil -q host -a name "$1" 2>/dev/null | head -c 65536 | awk '
		($1 == "ip_address:" || $1 == "ipv6_address:") && NF == 2 && $2 ~ /^[0-9A-Fa-f.:]+$/ && !seen[$2]++ {
			print $2; if (++n == 64) exit
		}'
}

# egress_resolvers: the Mac's DNS resolvers (`scutil --dns`), as egress_resolve prints addresses. Scoped
# link-local ones (fe80::1%en0) are left out: pf tables take no scope.
egress_resolvers() {
	scutil --dns 2>/dev/null | head -c 262144 | awk '
		$1 ~ /^nameserver\[[0-9]+\]$/ && $2 == ":" && NF == 3 && $3 ~ /^[0-9A-Fa-f.:]+$/ && !seen[$3]++ {
			print $3; if (++n == 64) exit
		}'
}

# check_egress: the self-check's egress part, as the agent: the allowlist's first host answers, and an
# address off the list is refused by pf (a reset: "Connection refused", not a timeout).
check_egress() {
	load_egress
	if [ "$E_ON" != true ]; then
		return 0
	fi
	check egress-pf-enabled pf_enabled
	check egress-anchor-loaded anchor_loaded
	if [ -n "$E_ALLOWED_HOST" ]; then
		check egress-allowed-host-connects agent_connects "$E_ALLOWED_HOST" "$E_ALLOWED_PORT"
	fi
	check egress-other-address-refused agent_refused "$E_DENIED_ADDRESS" 443
}

# agent_connects HOST PORT: as the agent, a TCP connection; -G bounds the connect, -w the rest (macOS nc).
agent_connects() { as_agent nc -z -G 5 -w 5 "$1" "$2"; }

agent_refused() {
	if out=$(as_agent nc -z -G 5 -w 5 "$1" "$2" 2>&1); then
		return 1
	fi
	case $out in *"Connection refused"*) return 0 ;; *) return 1 ;; esac
}

# remove_egress: uninstall (and a release without egress): the watchdog, pf's reference token of this
# fleet, the anchor's rules and tables, and the files. pf itself stays as the Mac had it otherwise.
remove_egress() {
	if [ ! -e "$T$EGRESS_STATE_DIR" ] && [ ! -e "$T$EGRESS_PLIST" ]; then
		return 0
	fi
	if daemon_loaded "$EGRESS_LABEL"; then
		log "stopping $EGRESS_LABEL"
		launchctl bootout "system/$EGRESS_LABEL" || :
		wait_unloaded "$EGRESS_LABEL"
	fi
	token=$(head -c 64 "$T$EGRESS_STATE_DIR/pf-token" 2>/dev/null) || token=
	case $token in
	'' | *[!0-9]*) ;;
	*)
		log "releasing pf reference token $token"
		pfctl -X "$token" >/dev/null 2>&1 || :
		;;
	esac
	log "removing the pf anchor $EGRESS_ANCHOR"
	pf_anchor -F all >/dev/null 2>&1 || :
	rm -rf "$T$EGRESS_STATE_DIR"
	rm -f "$T$EGRESS_PLIST" "$T$EGRESS_ANCHOR_FILE" "$T$EGRESS_DAEMON" "$T$EGRESS_LOG"
}
