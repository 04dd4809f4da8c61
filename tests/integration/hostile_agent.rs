//! A compromised agent against the installer (issue 16): before a reinstall, the agent (its real UID,
//! through setpriv) plants symlinks, FIFOs, folders where files belong and forged public-key lines in its
//! own trees; hard links to root's and a human's files are made as root, because Linux's
//! protected_hardlinks blocks them while macOS does not. Every file outside the agent's trees must come
//! out unchanged in content, owner and mode, and the next install must still succeed.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use crate::sim::*;

const HOME: &str = "/Users/hexagent";
/// The trees that are the agent's own: whatever it plants there is its business.
const AGENT_TREES: &[&str] = &[
    HOME,
    "/Users/Shared/hexagent-workspace",
    "/Library/Logs/confine/hexagent",
];

/// Runs `script` with sh as the agent hexagent (UID and GID 1051), as the kernel sees it.
fn as_agent(script: &str) {
    let out = as_hexagent(script);
    assert!(
        out.status.success(),
        "as the agent: {script}\n{}",
        output_text(&out)
    );
}

/// Everything on the Mac outside the agent's trees: owner, mode and content of every file, and the
/// directory records. Root's copy of the agent's gateway token is left out: it follows the token when an
/// install has to make a new one.
fn outside_agent_trees(mac: &Mac) -> BTreeMap<String, String> {
    let mut snap = mac.snapshot(true);
    snap.retain(|path, _| {
        !AGENT_TREES
            .iter()
            .any(|tree| path == tree || path.starts_with(&format!("{tree}/")))
            && !path.ends_with("/records/hexagent/gateway-token")
    });
    snap
}

/// Installs the example fleet, lets `plant` attack, reinstalls, and checks the Mac outside the agent's
/// trees is unchanged and a further install still succeeds. Returns the reinstall's output.
fn reinstall_after(plant: impl FnOnce(&Mac, &str)) -> String {
    let mac = Mac::new(DASH);
    let plan = example();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("first install:\n{e}"));
    let before = outside_agent_trees(&mac);
    let home = mac.on_mac(HOME).display().to_string();
    plant(&mac, &home);
    let out = mac
        .install(&plan)
        .unwrap_or_else(|e| panic!("the planted agent made the reinstall fail:\n{e}"));
    assert_eq!(
        changed(&before, &outside_agent_trees(&mac)),
        Vec::<String>::new(),
        "files outside the agent's trees changed:\n{out}"
    );
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("the next install failed:\n{e}"));
    assert_eq!(changed(&before, &outside_agent_trees(&mac)), Vec::<String>::new());
    out
}

#[test]
fn planted_links_and_forged_key_lines_reach_nothing_outside_the_agent() {
    let out = reinstall_after(|mac, home| {
        let plist = mac.on_mac(&example().agents[0].launchd.plist_path);
        let daemons = mac.on_mac("/Library/LaunchDaemons");
        as_agent(&format!(
            "ln -sfn '{plist}' {home}/.openclaw/secrets/gateway-token
             rm -f {home}/.ssh/config && ln -s '{daemons}' {home}/.ssh/config
             printf 'docbot deploy_halfday ssh-ed25519 AAAAforged docbot\\n' >>{home}/.ssh/deploy_halfday.pub",
            plist = plist.display(),
            daemons = daemons.display(),
        ));
        // A hard link to a human's private key, as macOS lets the agent make.
        let pat = format!("{home}/.openclaw/secrets/github_pat");
        fs::remove_file(&pat).expect("remove the secret");
        fs::hard_link(mac.on_mac("/Users/alice/.ssh/id_ed25519"), &pat).expect("hard link");
    });
    for moved in [
        "/.openclaw/secrets/gateway-token.confine-moved: it was a symbolic link",
        "/.ssh/config.confine-moved: it was a symbolic link",
        "github_pat.confine-moved: it was a hard link or another account's file",
    ] {
        assert!(out.contains(moved), "{moved}\n{out}");
    }
}

#[test]
fn forged_public_key_lines_are_replaced_from_roots_record() {
    let mac = Mac::new(DASH);
    let plan = example();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("first install:\n{e}"));
    let public = mac.on_mac("/Users/hexagent/.ssh/deploy_halfday.pub");
    let genuine = fs::read_to_string(&public).expect("public key");
    let inventory = mac.on_mac(&format!("{}/public-keys.txt", plan.support_dir));
    let listed = fs::read_to_string(&inventory).expect("public-keys.txt");
    // Another valid key (one of the agent's own making), and a forged line for another agent.
    let forged = mac.state.join("forged");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "forged", "-f"])
        .arg(&forged)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let forged_line = fs::read_to_string(forged.with_extension("pub")).expect("forged key");
    as_agent(&format!(
        "printf '%s\\n%s\\n' '{}' 'docbot deploy ssh-ed25519 AAAAforged docbot' >'{}'",
        forged_line.trim_end(),
        public.display()
    ));
    assert!(fs::read_to_string(&public).unwrap().contains("AAAAforged"));
    mac.install(&plan).unwrap_or_else(|e| panic!("reinstall:\n{e}"));
    assert_eq!(fs::read_to_string(&inventory).unwrap(), listed);
    assert_eq!(fs::read_to_string(&public).unwrap(), genuine);
    let records = format!("{}/records", plan.support_dir);
    assert_eq!(
        mode_owner(&mac, &records),
        (0o700, 0, 0),
        "root's record is root-only"
    );
}

#[test]
fn fifos_and_hard_links_where_files_belong_neither_hang_nor_leak() {
    let support = example().support_dir.clone();
    let out = reinstall_after(|mac, home| {
        let support_dir = mac.on_mac(&support);
        as_agent(&format!(
            "rm -rf {home}/.openclaw/secrets && ln -s '{support}' {home}/.openclaw/secrets
             rm -f {home}/.ssh/config && mkfifo {home}/.ssh/config",
            support = support_dir.display(),
        ));
        // A hard link to root's own uninstall script where the public key belongs.
        let public = format!("{home}/.ssh/deploy_halfday.pub");
        fs::remove_file(&public).expect("remove the public key");
        fs::hard_link(support_dir.join("uninstall"), &public).expect("hard link");
    });
    for moved in [
        "/.openclaw/secrets.confine-moved: it was a symbolic link",
        "/.ssh/config.confine-moved: it was not a regular file",
        "/.ssh/deploy_halfday.pub.confine-moved: it was a hard link or another account's file",
    ] {
        assert!(out.contains(moved), "{moved}\n{out}");
    }
}

#[test]
fn folders_where_files_belong_are_moved_aside() {
    let out = reinstall_after(|_, home| {
        as_agent(&format!(
            "rm -f {home}/.openclaw/secrets/gateway-token
             mkdir -p {home}/.openclaw/secrets/gateway-token/inside
             rm -f {home}/.ssh/deploy_halfday.pub && mkdir {home}/.ssh/deploy_halfday.pub"
        ));
    });
    assert!(
        out.contains("gateway-token.confine-moved: it was not a regular file"),
        "{out}"
    );
    assert!(out.contains("generating the gateway token of hexagent"), "{out}");
    assert!(
        out.contains("deploy_halfday.pub.confine-moved: it was not a regular file"),
        "{out}"
    );
}

#[test]
fn remote_login_refuses_the_agents_until_uninstall() {
    let mac = Mac::new(DASH);
    let plan = example();
    // Remote Login limited to named users, and someone added the agent.
    mac.write_ds("Groups", "com.apple.access_ssh", "PrimaryGroupID", "399");
    mac.write_ds(
        "Groups",
        "com.apple.access_ssh",
        "RecordName",
        "com.apple.access_ssh",
    );
    mac.write_ds(
        "Groups",
        "com.apple.access_ssh",
        "GroupMembership",
        "alice\nhexagent\n",
    );
    let out = mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    assert!(
        out.contains("removing hexagent from com.apple.access_ssh"),
        "{out}"
    );
    assert_eq!(
        mac.ds("Groups", "com.apple.access_ssh", "GroupMembership")
            .as_deref(),
        Some("alice\n")
    );
    let drop_in = "/etc/ssh/sshd_config.d/confine-halfday-agents.conf";
    assert_eq!(
        fs::read_to_string(mac.on_mac(drop_in)).expect("drop-in"),
        "# Written by confine for halfday-agents: its agents never log in over SSH.\nDenyUsers hexagent\n"
    );
    assert_eq!(mode_owner(&mac, drop_in), (0o644, 0, 0));
    let uninstall = mac.uninstall(&plan);
    assert!(uninstall.status.success(), "{}", output_text(&uninstall));
    assert!(!mac.on_mac(drop_in).exists(), "uninstall removes the drop-in");
}
