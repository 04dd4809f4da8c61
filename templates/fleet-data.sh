{# Template note: `|safe` appears only on loop counters, which are part of variable names; every value goes through the `sh` escaper. -#}
# shellcheck shell=sh disable=SC2034
# confine fleet data, generated from the fleet spec by `confine build`. Do not edit: rebuild instead.
#
# This file only assigns variables. Every value is single-quoted by confine's one shell-quoting escaper
# (src/installer.rs), so sourcing it never expands or runs anything taken from the spec. Lists are
# numbered: GROUP_COUNT, then GROUP_1_*, GROUP_2_*, ...; the scripts read an element with
# `eval "x=\${GROUP_${i}_NAME}"`, where `i` is a counter of their own, never a spec value.
# (SC2034: the variables are used by the scripts that source this file.)
FLEET_NAME={{ plan.fleet.name }}
FLEET_ORGANIZATION={{ plan.fleet.organization }}
FLEET_RELEASE={{ plan.fleet.release }}
FLEET_MINIMUM_MACOS={{ plan.fleet.minimum_macos }}
PKG_IDENTIFIER={{ plan.pkg_identifier }}
SUPPORT_DIR={{ plan.support_dir }}
EMBEDDED_SECRETS_DIR={{ plan.embedded_secrets_dir }}
LOG_ROOT={{ log_root }}
OPENCLAW_LOG_DIR={{ openclaw_log_dir }}
LOCK_HUMAN_HOMES={{ plan.lock_human_homes }}
EGRESS={{ plan.egress.enabled }}
EGRESS_ANCHOR={{ plan.egress.anchor }}
EGRESS_ANCHOR_FILE={{ plan.egress.anchor_file }}
EGRESS_LABEL={{ plan.egress.label }}
EGRESS_PLIST={{ plan.egress.plist_path }}
EGRESS_DAEMON={{ plan.egress.daemon }}
EGRESS_STATE_DIR={{ plan.egress.state_dir }}
EGRESS_LOG={{ plan.egress.log_path }}
EGRESS_DNS_TABLE={{ dns_table }}
EGRESS_ADDRESS_TTL={{ address_ttl }}

GROUP_COUNT={{ plan.groups.len() }}
{%- for g in plan.groups %}
{%- let i = loop.index %}
GROUP_{{ i|safe }}_NAME={{ g.name }}
GROUP_{{ i|safe }}_GID={{ g.gid }}
GROUP_{{ i|safe }}_FULL_NAME={{ g.full_name }}
GROUP_{{ i|safe }}_INCLUDE_LOCAL_ADMINS={{ g.include_local_admins }}
GROUP_{{ i|safe }}_MEMBER_COUNT={{ g.members.len() }}
{%- for m in g.members %}
GROUP_{{ i|safe }}_MEMBER_{{ loop.index|safe }}={{ m }}
{%- endfor %}
{%- endfor %}

AGENT_COUNT={{ plan.agents.len() }}
{%- for a in plan.agents %}
{%- let i = loop.index %}
AGENT_{{ i|safe }}_NAME={{ a.name }}
AGENT_{{ i|safe }}_FULL_NAME={{ a.full_name }}
AGENT_{{ i|safe }}_UID={{ a.uid }}
AGENT_{{ i|safe }}_GID={{ a.primary_gid }}
AGENT_{{ i|safe }}_GROUP={{ a.primary_group }}
AGENT_{{ i|safe }}_HOME={{ a.home }}
AGENT_{{ i|safe }}_SHELL={{ a.shell }}
AGENT_{{ i|safe }}_WORKSPACE={{ a.workspace.path }}
AGENT_{{ i|safe }}_WORKSPACE_GROUP={{ a.workspace.group }}
AGENT_{{ i|safe }}_WORKSPACE_MODE={{ self.octal(a.workspace.mode) }}
AGENT_{{ i|safe }}_CONFIG_DIR={{ a.config_dir }}
AGENT_{{ i|safe }}_CONFIG_PATH={{ a.config_path }}
AGENT_{{ i|safe }}_STATE_DIR={{ a.state_dir }}
AGENT_{{ i|safe }}_SECRETS_DIR={{ a.secrets_dir }}
AGENT_{{ i|safe }}_TOKEN_PATH={{ a.token_path }}
AGENT_{{ i|safe }}_TOKEN_BYTES={{ a.token_bytes }}
AGENT_{{ i|safe }}_LOG_DIR={{ a.log_dir }}
AGENT_{{ i|safe }}_LABEL={{ a.launchd.label }}
AGENT_{{ i|safe }}_PLIST={{ a.launchd.plist_path }}
AGENT_{{ i|safe }}_PORT={{ a.gateway_port }}
AGENT_{{ i|safe }}_NODE={{ a.openclaw.node }}
AGENT_{{ i|safe }}_INSTALL={{ self.install_method(a) }}
AGENT_{{ i|safe }}_PREFIX={{ a.openclaw.prefix }}
AGENT_{{ i|safe }}_ENTRY={{ a.openclaw.entry }}
AGENT_{{ i|safe }}_OPENCLAW_VERSION={{ a.openclaw.version }}
AGENT_{{ i|safe }}_ALLOW_LIFECYCLE_SCRIPTS={{ a.openclaw.allow_lifecycle_scripts }}
AGENT_{{ i|safe }}_SSH_KEY_COUNT={{ a.ssh_keys.len() }}
{%- for k in a.ssh_keys %}
{%- let j = loop.index %}
AGENT_{{ i|safe }}_SSH_KEY_{{ j|safe }}_PATH={{ k.path }}
AGENT_{{ i|safe }}_SSH_KEY_{{ j|safe }}_HOST={{ k.host }}
AGENT_{{ i|safe }}_SSH_KEY_{{ j|safe }}_HOSTNAME={{ k.hostname }}
AGENT_{{ i|safe }}_SSH_KEY_{{ j|safe }}_USER={{ k.user }}
AGENT_{{ i|safe }}_SSH_KEY_{{ j|safe }}_COMMENT={{ k.comment }}
{%- endfor %}
AGENT_{{ i|safe }}_SECRET_COUNT={{ a.secrets.len() }}
{%- for s in a.secrets %}
AGENT_{{ i|safe }}_SECRET_{{ loop.index|safe }}_PATH={{ s.path }}
{%- endfor %}
AGENT_{{ i|safe }}_ROTATION_COUNT={{ a.rotation.len() }}
{%- for r in a.rotation %}
AGENT_{{ i|safe }}_ROTATION_{{ loop.index|safe }}_LABEL={{ r.label }}
AGENT_{{ i|safe }}_ROTATION_{{ loop.index|safe }}_PLIST={{ r.plist_path }}
AGENT_{{ i|safe }}_ROTATION_{{ loop.index|safe }}_ENABLED={{ r.enabled }}
{%- endfor %}
AGENT_{{ i|safe }}_REGISTERED_KEYS={{ self.registered_keys(a) }}
AGENT_{{ i|safe }}_ALLOWLIST_COUNT={{ a.tools.exec_allowlist.len() }}
{%- for e in a.tools.exec_allowlist %}
AGENT_{{ i|safe }}_ALLOWLIST_{{ loop.index|safe }}={{ e }}
{%- endfor %}
AGENT_{{ i|safe }}_EGRESS={{ a.egress.is_some() }}
{%- if let Some(egress) = a.egress %}
{%- let hosts = self.egress_hosts(egress) %}
AGENT_{{ i|safe }}_EGRESS_HOST_COUNT={{ hosts.len() }}
{%- for (name, table) in hosts %}
AGENT_{{ i|safe }}_EGRESS_HOST_{{ loop.index|safe }}_NAME={{ name }}
AGENT_{{ i|safe }}_EGRESS_HOST_{{ loop.index|safe }}_TABLE={{ table }}
{%- endfor %}
{%- if let Some((host, port)) = egress.allowed_probe %}
AGENT_{{ i|safe }}_EGRESS_ALLOWED_HOST={{ host }}
AGENT_{{ i|safe }}_EGRESS_ALLOWED_PORT={{ port }}
{%- else %}
AGENT_{{ i|safe }}_EGRESS_ALLOWED_HOST=''
AGENT_{{ i|safe }}_EGRESS_ALLOWED_PORT=''
{%- endif %}
AGENT_{{ i|safe }}_EGRESS_DENIED_ADDRESS={{ egress.denied_probe }}
{%- endif %}
{%- endfor %}

# The audit trail (agents[].audit): collected by two root daemons into a root-only folder.
NEWSYSLOG_CONF={{ plan.newsyslog_path }}
{%- match plan.audit %}
{%- when Some with (audit) %}
AUDIT_DIR={{ audit.dir }}
AUDIT_FIFO={{ audit.fifo }}
AUDIT_MAX_EVENT_BYTES={{ max_event_bytes }}
AUDIT_ESLOGGER_LABEL={{ audit.eslogger_label }}
AUDIT_ESLOGGER_PLIST={{ audit.eslogger_plist }}
AUDIT_COLLECTOR_LABEL={{ audit.collector_label }}
AUDIT_COLLECTOR_PLIST={{ audit.collector_plist }}
AUDIT_AGENT_COUNT={{ audit.agents.len() }}
{%- for a in audit.agents %}
{%- let i = loop.index %}
AUDIT_AGENT_{{ i|safe }}_NAME={{ a.name }}
AUDIT_AGENT_{{ i|safe }}_UID={{ a.uid }}
AUDIT_AGENT_{{ i|safe }}_EVENTS={{ a.events.join(" ") }}
AUDIT_AGENT_{{ i|safe }}_FILE_BYTES={{ a.file_bytes }}
AUDIT_AGENT_{{ i|safe }}_KEEP={{ a.keep }}
{%- endfor %}
{%- when None %}
AUDIT_AGENT_COUNT=0
{%- endmatch %}
