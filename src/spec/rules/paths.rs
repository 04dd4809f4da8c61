//! Where on the Mac a spec may point root.
//!
//! The postinstall runs as root: it chowns each agent's home and workspace to the agent and its OpenClaw
//! prefix recursively to root. A path in the wrong place would hand a system folder, a human's home or the
//! code the agent runs to the wrong owner. So each kind of path has a short allow-list of roots, all defined
//! here, and paths are compared the way APFS compares file names: case-insensitively, after Unicode
//! normalization (APFS volumes are case-insensitive and normalization-insensitive unless formatted
//! otherwise, and confine cannot know how a Mac was formatted, so it assumes the default).

use unicode_normalization::UnicodeNormalization;

use super::super::model::{Agent, Fleet, Located};

/// confine's own root-owned folder on the Mac: the installer's data file, uninstaller, agent configs and
/// OpenClaw installs. Nothing in it is writable by an agent, so OpenClaw prefixes must be below it.
pub const SUPPORT_ROOT: &str = "/Library/Application Support/confine";
/// macOS's folder of user homes. An agent's home may be `/Users/<agent name>` (the default) and nothing
/// else below it: any other child is a human's home, `/Users/Shared`, or `Guest`.
pub const USERS: &str = "/Users";
/// The dedicated root for agent homes and workspaces outside `/Users`: `/private/var/confine/<fleet>/…`.
/// Made by the installer, root-owned, used by nothing else (`/private/var` is the real folder behind the
/// `/var` link, so paths are written in full).
pub const DEDICATED_ROOT: &str = "/private/var/confine";
/// The folder every local user can reach; workspaces shared with humans go below it.
pub const SHARED: &str = "/Users/Shared";

/// `/Users/<agent>`: the default home.
pub fn default_home(agent: &str) -> String {
    format!("{USERS}/{agent}")
}

/// `/Users/Shared/<agent>-workspace`: the default workspace.
pub fn default_workspace(agent: &str) -> String {
    format!("{SHARED}/{agent}-workspace")
}

/// `<support root>/<fleet>/agents/<agent>`: the root-owned folder of an agent's config.
pub fn config_dir(fleet: &str, agent: &str) -> String {
    format!("{SUPPORT_ROOT}/{fleet}/agents/{agent}")
}

/// `<config dir>/openclaw`: the default OpenClaw prefix, given the agent's [`config_dir`].
pub fn default_prefix(config_dir: &str) -> String {
    format!("{config_dir}/openclaw")
}

/// `<fleet identifier>.<agent>.gateway`: the default launchd label (not OpenClaw's `ai.openclaw.gateway`,
/// which OpenClaw would try to manage).
pub fn default_label(identifier: &str, agent: &str) -> String {
    format!("{identifier}.{agent}.gateway")
}

/// A path as APFS compares it: canonical decomposition, then case folding (lower case, and the letters
/// whose folding differs from their lower case, such as `ſ`), then decomposition again (folding can
/// compose); and `/etc`, `/var` and `/tmp`, which are links to their `/private` forms on every Mac, in
/// those forms. Two spellings with the same key name the same file on a default APFS volume.
pub fn apfs_key(path: &str) -> String {
    let key: String = path.nfd().flat_map(char::to_lowercase).map(fold).nfd().collect();
    let linked = ["/etc", "/var", "/tmp"].iter().any(|link| {
        key.strip_prefix(link)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if linked { format!("/private{key}") } else { key }
}

/// The simple case folding of a lower-case letter, where it is not the letter itself (Unicode's
/// CaseFolding.txt, status C and S, for letters whose lower case is already lower).
fn fold(c: char) -> char {
    match c {
        '\u{017f}' => 's',
        '\u{0345}' | '\u{1fbe}' => '\u{03b9}',
        '\u{03c2}' => '\u{03c3}',
        '\u{03d0}' => '\u{03b2}',
        '\u{03d1}' => '\u{03b8}',
        '\u{03d5}' => '\u{03c6}',
        '\u{03d6}' => '\u{03c0}',
        '\u{03f0}' => '\u{03ba}',
        '\u{03f1}' => '\u{03c1}',
        '\u{03f5}' => '\u{03b5}',
        '\u{1e9b}' => '\u{1e61}',
        c => c,
    }
}

/// Whether `path` is `root` or below it, compared as APFS does.
pub fn within(path: &str, root: &str) -> bool {
    let (path, root) = (apfs_key(path), apfs_key(root));
    let root = root.trim_end_matches('/');
    path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `path` is strictly below `root`.
pub fn below(path: &str, root: &str) -> bool {
    within(path, root) && apfs_key(path) != apfs_key(root)
}

/// Whether either path contains the other.
pub fn overlap(a: &str, b: &str) -> bool {
    within(a, b) || within(b, a)
}

/// One agent's paths with the defaults applied, each with the spec value it came from (if written).
pub struct AgentPaths<'a> {
    pub agent: &'a Agent,
    pub home: String,
    pub home_at: Option<&'a Located<String>>,
    pub workspace: String,
    pub workspace_at: Option<&'a Located<String>>,
    pub prefix: String,
    pub prefix_at: Option<&'a Located<String>>,
}

impl<'a> AgentPaths<'a> {
    pub fn new(fleet: &Fleet, agent: &'a Agent) -> AgentPaths<'a> {
        let name = &agent.name.value;
        let home_at = agent.home.as_ref();
        let workspace_at = agent.workspace.path.as_ref();
        let prefix_at = agent.openclaw.prefix.as_ref();
        AgentPaths {
            agent,
            home: home_at.map_or_else(|| default_home(name), |v| v.value.clone()),
            home_at,
            workspace: workspace_at.map_or_else(|| default_workspace(name), |v| v.value.clone()),
            workspace_at,
            prefix: prefix_at.map_or_else(
                || default_prefix(&config_dir(&fleet.name.value, name)),
                |v| v.value.clone(),
            ),
            prefix_at,
        }
    }

    /// Where to report a problem with this agent's paths: the path's own line, else the agent's name.
    pub fn at(&self, written: Option<&'a Located<String>>) -> &'a Located<String> {
        written.unwrap_or(&self.agent.name)
    }
}

/// Why `home` is not an allowed home for `agent` of `fleet`, if it is not.
pub fn home_problem(home: &str, agent: &str, fleet: &str) -> Option<String> {
    let dedicated = format!("{DEDICATED_ROOT}/{fleet}/{agent}");
    if apfs_key(home) == apfs_key(&default_home(agent)) || apfs_key(home) == apfs_key(&dedicated) {
        return None;
    }
    Some(format!(
        "an agent's home must be `{}` or `{dedicated}`",
        default_home(agent)
    ))
}

/// Why `workspace` is not an allowed workspace for an agent whose home is `home`, if it is not.
pub fn workspace_problem(workspace: &str, home: &str, fleet: &str) -> Option<String> {
    let dedicated = format!("{DEDICATED_ROOT}/{fleet}");
    if below(workspace, SHARED) || below(workspace, home) || below(workspace, &dedicated) {
        return None;
    }
    Some(format!(
        "a workspace must be below `{SHARED}/`, below the agent's own home, or below `{dedicated}/`"
    ))
}

/// Why `prefix` is not an allowed OpenClaw prefix, if it is not.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    (!below(prefix, SUPPORT_ROOT))
        .then(|| format!("the OpenClaw prefix must be below `{SUPPORT_ROOT}/`, which only root can write"))
}

/// System folders an extra payload must not replace: a payload entry sets the owner and mode of its path.
const SYSTEM_FOLDERS: &[&str] = &[
    "/",
    "/Applications",
    "/Library",
    "/Library/Application Support",
    "/Library/LaunchAgents",
    "/Library/LaunchDaemons",
    "/Users",
    "/Users/Shared",
    "/bin",
    "/etc",
    "/opt",
    "/private",
    "/private/etc",
    "/private/tmp",
    "/private/var",
    "/sbin",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/sbin",
    "/var",
];

/// Folders the payload may never write into: the sealed system volume and the local directory service.
const NEVER_WRITTEN: &[&str] = &["/System", "/private/var/db/dslocal", "/dev", "/Volumes"];

/// Folders every local user, an agent too, can write into (mode 1777, or each user's own temporary
/// folder below `/private/var/folders`): an agent could plant a link where the payload goes.
pub const WRITABLE_BY_ALL: &[&str] = &[
    "/Users/Shared",
    "/private/tmp",
    "/private/var/tmp",
    "/private/var/folders",
];

/// Why an extra payload may not go to `destination`, if it may not.
pub fn destination_problem(destination: &str) -> Option<String> {
    if let Some(folder) = SYSTEM_FOLDERS
        .iter()
        .find(|f| apfs_key(f) == apfs_key(destination))
    {
        return Some(format!(
            "`{folder}` is a system folder; the payload would replace its owner and mode"
        ));
    }
    if let Some(root) = NEVER_WRITTEN.iter().find(|root| within(destination, root)) {
        return Some(format!("nothing may be installed under `{root}`"));
    }
    WRITABLE_BY_ALL
        .iter()
        .find(|root| within(destination, root))
        .map(|root| format!("`{root}` is a folder every user, the agents too, can write"))
}

/// Scripts whose letters look alike: a path segment mixing them (a Cyrillic `е` among Latin letters) is
/// how a look-alike path is made. Other scripts mixed with Latin (`项目-docs`) are common and allowed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
}

fn script(c: char) -> Option<Script> {
    match c {
        'a'..='z' | 'A'..='Z' | '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' => Some(Script::Latin),
        '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => Some(Script::Greek),
        '\u{0400}'..='\u{052F}'
        | '\u{1C80}'..='\u{1C8F}'
        | '\u{2DE0}'..='\u{2DFF}'
        | '\u{A640}'..='\u{A69F}' => Some(Script::Cyrillic),
        _ => None,
    }
}

/// The first path segment that mixes look-alike scripts, if any.
pub fn mixed_script_segment(path: &str) -> Option<&str> {
    path.split('/').find(|segment| {
        let mut scripts = segment.chars().filter_map(script);
        scripts
            .next()
            .is_some_and(|first| scripts.any(|other| other != first))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apfs_compares_case_and_normalization_insensitively() {
        assert!(within("/users/shared", "/Users/Shared"));
        assert!(within("/Users/Shared/x", "/USERS/shared"));
        // é precomposed (U+00E9) and decomposed (e + U+0301) are one name on APFS.
        assert_eq!(apfs_key("/Users/Caf\u{e9}"), apfs_key("/users/cafe\u{301}"));
        assert!(!within("/Users/Sharedx", "/Users/Shared"));
        assert!(below("/Users/Shared/a", "/Users/Shared"));
        assert!(!below("/Users/Shared", "/Users/Shared"));
        // ſ (long s) folds to s; final sigma to sigma.
        assert_eq!(apfs_key("/U\u{17f}ers/hex"), apfs_key("/Users/HEX"));
        assert_eq!(apfs_key("/x/\u{3c2}"), apfs_key("/x/\u{3a3}"));
        // /etc, /var and /tmp are links to their /private forms; /etcetera is not.
        assert_eq!(
            apfs_key("/var/confine/f/hex"),
            apfs_key("/private/var/confine/f/hex")
        );
        assert_eq!(apfs_key("/ETC"), apfs_key("/private/etc"));
        assert!(within("/tmp/x", "/private/tmp"));
        assert_ne!(apfs_key("/etcetera"), apfs_key("/private/etcetera"));
    }

    #[test]
    fn destinations() {
        assert_eq!(destination_problem("/usr/local/libexec/tool"), None);
        for bad in [
            "/private/var/db/dslocal/nodes/Default/users/root.plist",
            "/var/db/dslocal/nodes/x",
            "/tmp/tool",
            "/Users/Shared/tools/x",
            "/private/var/folders/ab/x",
            "/\u{17f}y\u{17f}tem/Library/x",
            "/etc",
        ] {
            assert!(destination_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn homes() {
        assert_eq!(home_problem("/Users/hex", "hex", "f"), None);
        assert_eq!(home_problem("/Users/HEX", "hex", "f"), None);
        assert_eq!(home_problem("/private/var/confine/f/hex", "hex", "f"), None);
        for bad in [
            "/etc",
            "/Users/Shared",
            "/Users/alice",
            "/Users",
            "/var/hex",
            "/Users/hex/sub",
        ] {
            assert!(home_problem(bad, "hex", "f").is_some(), "{bad}");
        }
    }

    #[test]
    fn mixed_scripts() {
        assert_eq!(mixed_script_segment("/Users/Shared/caf\u{e9}"), None);
        assert_eq!(mixed_script_segment("/Users/Shared/\u{43f}\u{440}\u{43e}"), None);
        assert_eq!(
            mixed_script_segment("/Users/Shar\u{435}d/x"),
            Some("Shar\u{435}d")
        );
    }
}
