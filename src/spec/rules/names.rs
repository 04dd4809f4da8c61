//! Account and group names macOS keeps for itself.
//!
//! Every account and group Apple creates for a daemon starts with `_` (`_www`, `_sshd`, `_lpadmin`, and
//! new ones with every release), so the whole `_` namespace is refused. The few system names without the
//! underscore are listed below: those in the `/etc/passwd` and `/etc/group` that macOS ships (the flat-file
//! copies of the local directory's system records), the `com.apple.access_*` service ACL groups without
//! their prefix, and the names of the folders macOS keeps in `/Users` (an agent named `shared` would get
//! `/Users/Shared` as its home on a case-insensitive volume).
//!
//! Spec names are lower-case ASCII, so comparing them in lower case is comparing them case-insensitively.

/// System names without a leading `_`, from macOS's `/etc/passwd` and `/etc/group`, plus the folders in
/// `/Users`.
pub const SYSTEM_NAMES: &[&str] = &[
    // /etc/passwd
    "root",
    "daemon",
    "nobody",
    // /etc/group
    "nogroup",
    "wheel",
    "kmem",
    "sys",
    "tty",
    "operator",
    "mail",
    "bin",
    "procview",
    "procmod",
    "owner",
    "everyone",
    "group",
    "staff",
    "certusers",
    "utmp",
    "authedusers",
    "interactusers",
    "netusers",
    "consoleusers",
    "localaccounts",
    "netaccounts",
    "dialer",
    "network",
    "admin",
    "accessibility",
    // Folders and accounts macOS makes in /Users.
    "shared",
    "guest",
];

/// Prefixes of system group families: `com.apple.access_ssh` and friends (and the same without
/// `com.apple.`, which some tools show), and the file-sharing groups `com.apple.sharepoint.group.N`.
const SYSTEM_PREFIXES: &[&str] = &["_", "com.apple.", "access_"];

/// Whether `name` (an account or group short name) is macOS's own, compared case-insensitively.
pub fn is_system_name(name: &str) -> bool {
    let name = name.to_lowercase();
    SYSTEM_NAMES.contains(&name.as_str()) || SYSTEM_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names() {
        for name in [
            "_www",
            "_sshd",
            "_mysql",
            "bin",
            "procmod",
            "guest",
            "Shared",
            "_lpadmin",
            "access_ssh",
            "root",
        ] {
            assert!(is_system_name(name), "{name}");
        }
        for name in ["hexagent", "agent_www", "docbot"] {
            assert!(!is_system_name(name), "{name}");
        }
    }
}
