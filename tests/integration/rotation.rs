//! Credential rotation (issue 15) on the simulated Mac: `rotate` from the installed support folder, as the
//! rotation daemons run it. The fake launchctl loads the agent's token when it (re)starts the gateway
//! and the fake curl accepts only that token, so a rotation passes only if the gateway really restarted
//! with the new file. Deploy keys go through their stages; a PAT arrives on standard input; and an agent
//! racing the rotation with links and FIFOs reaches nothing outside its trees.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

use crate::sim::*;

const AGENT: &str = "hexagent";
const TOKEN: &str = "/Library/Application Support/confine/halfday-agents/agents/hexagent/gateway-token";
const KEY: &str = "/Users/hexagent/.ssh/deploy_halfday";

/// An installed example fleet whose gateway checks the token it loaded.
fn installed() -> (Mac, Fleet) {
    installed_with(apple_sh())
}

fn installed_with(shell: &'static [&'static str]) -> (Mac, Fleet) {
    let mac = Mac::new(shell);
    mac.write_state("gateway-token-check", mac.target.to_str().expect("utf-8 path"));
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    (mac, plan)
}

/// Runs the installed `rotate` as root, as a rotation daemon does, with `stdin`.
pub(crate) fn rotate(mac: &Mac, plan: &Fleet, args: &[&str], stdin: &str) -> Output {
    let rotate = mac.on_mac(&format!("{}/rotate", plan.support_dir));
    let mut command = Command::new("timeout");
    command.arg("120").args(mac.shell).arg(rotate).args(args);
    run_as_root(mac, command, stdin)
}

/// Runs `command` as root on the simulated Mac (its volume in CONFINE_SIM_TARGET), fed `stdin`.
fn run_as_root(mac: &Mac, mut command: Command, stdin: &str) -> Output {
    let mut child = mac
        .root_env(&mut command)
        .env("CONFINE_SIM_TARGET", &mac.target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs the command");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("the command ends")
}

/// `sh -c script` as the agent hexagent (its UID, GID and groups), as the kernel sees it.
fn as_agent(script: &str) -> Command {
    hexagent_sh("-c", script)
}

fn read(mac: &Mac, path: &str) -> String {
    fs::read_to_string(mac.on_mac(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn record(plan: &Fleet, name: &str) -> String {
    format!("{}/records/{AGENT}/{name}", plan.support_dir)
}

/// The token the simulated gateway loaded at its last (re)start.
fn loaded_token(mac: &Mac, plan: &Fleet) -> String {
    fs::read_to_string(
        mac.state
            .join("launchd")
            .join(&plan.agents[0].launchd.label)
            .join("token"),
    )
    .expect("the gateway loaded a token")
}

/// status.json's rotation entry for `credential`, as its one line.
fn rotation_entry(mac: &Mac, plan: &Fleet, credential: &str) -> String {
    let status = read(mac, &format!("{}/status.json", plan.support_dir));
    let parsed: serde_json::Value = serde_json::from_str(&status).expect("status.json is JSON");
    let entry = parsed["rotation"]
        .as_array()
        .expect("a rotation list")
        .iter()
        .find(|e| e["agent"] == AGENT && e["credential"] == credential)
        .unwrap_or_else(|| panic!("no rotation entry for {credential}:\n{status}"));
    entry.to_string()
}

#[test]
fn gateway_token_rotation_restarts_the_gateway_and_probes_with_roots_copy() {
    for shell in [DASH, BASH_POSIX] {
        token_rotation_succeeds(shell);
    }
}

fn token_rotation_succeeds(shell: &'static [&'static str]) {
    let (mac, plan) = installed_with(shell);
    let old = read(&mac, TOKEN);
    assert_eq!(
        read(&mac, &record(&plan, "gateway-token")),
        old,
        "root keeps a copy"
    );
    assert_eq!(loaded_token(&mac, &plan), old);
    mac.clear_commands();

    let out = rotate(&mac, &plan, &["gateway-token", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    let new = read(&mac, TOKEN);
    assert_ne!(new, old);
    assert_eq!(new.trim().len(), 64, "32 random bytes, hex");
    assert_eq!(read(&mac, &record(&plan, "gateway-token")), new);
    assert_eq!(loaded_token(&mac, &plan), new, "the gateway restarted with it");
    assert_eq!(mode_owner(&mac, TOKEN), (0o400, 1051, 1051));
    let log = mac.commands();
    assert!(
        log.contains("launchctl kickstart -k system/com.halfday.agents.hexagent.gateway\n"),
        "{log}"
    );
    // The token reaches curl in a header file, never as an argument.
    assert!(!log.contains(new.trim()), "{log}");
    assert!(
        rotation_entry(&mac, &plan, "gateway-token").contains("\"rotated\":\"2026-01-01T00:00:00Z\""),
        "{}",
        rotation_entry(&mac, &plan, "gateway-token")
    );
    // The rest of status.json is the install's, untouched.
    let status = read(&mac, &format!("{}/status.json", plan.support_dir));
    assert!(status.contains("\"result\": \"ok\""), "{status}");
}

#[test]
fn gateway_token_rotation_rolls_back_when_the_probe_fails() {
    let (mac, plan) = installed();
    let old = read(&mac, TOKEN);
    let status_before = read(&mac, &format!("{}/status.json", plan.support_dir));
    // The gateway restarts but keeps serving the token it had: the new one is never accepted.
    mac.write_state("gateway-keeps-token", "");

    let out = rotate(&mac, &plan, &["gateway-token", AGENT], "");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("did not accept the new token: putting the old one back"),
        "{text}"
    );
    assert!(text.contains("the old token is back in place"), "{text}");
    assert_eq!(read(&mac, TOKEN), old, "the old token is back");
    assert_eq!(read(&mac, &record(&plan, "gateway-token")), old);
    assert_eq!(mode_owner(&mac, TOKEN), (0o400, 1051, 1051));
    assert_eq!(
        read(&mac, &format!("{}/status.json", plan.support_dir)),
        status_before,
        "no rotation is recorded"
    );
    let kickstarts = mac.commands().matches("launchctl kickstart -k").count();
    assert_eq!(kickstarts, 2, "one restart for the new token, one for the old");
}

#[test]
fn gateway_token_rotation_refuses_without_roots_record() {
    let (mac, plan) = installed();
    fs::remove_file(mac.on_mac(&record(&plan, "gateway-token"))).expect("remove record");
    let old = read(&mac, TOKEN);
    let out = rotate(&mac, &plan, &["gateway-token", AGENT], "");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("root has no record of the gateway token of hexagent"),
        "{text}"
    );
    assert_eq!(read(&mac, TOKEN), old);
    let out = rotate(&mac, &plan, &["gateway-token", "nobody"], "");
    assert!(output_text(&out).contains("has no agent named 'nobody'"));
}

fn public_keys(mac: &Mac, plan: &Fleet) -> String {
    read(mac, &format!("{}/public-keys.txt", plan.support_dir))
}

fn key_material(line: &str) -> String {
    line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[test]
fn deploy_key_rotation_goes_through_its_stages() {
    let (mac, plan) = installed();
    let active = read(&mac, &format!("{KEY}.pub"));
    let active_private = read(&mac, KEY);
    let listed = public_keys(&mac, &plan);
    assert_eq!(listed.lines().count(), 1, "{listed}");

    // Staged: a pending key beside the active one, listed as pending; ssh still uses the old key.
    let out = rotate(&mac, &plan, &["ssh-stage", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    let pending = read(&mac, &format!("{KEY}.pending.pub"));
    assert_ne!(key_material(&pending), key_material(&active));
    assert_eq!(mode_owner(&mac, &format!("{KEY}.pending")), (0o600, 1051, 1051));
    assert_eq!(read(&mac, KEY), active_private);
    let listed = public_keys(&mac, &plan);
    assert_eq!(
        listed,
        format!("hexagent deploy_halfday {active}hexagent deploy_halfday.pending {pending}")
    );
    assert!(rotation_entry(&mac, &plan, "ssh-key/deploy_halfday").contains("\"pending\":true"));

    // Staging again keeps the same pending key: the forge may already hold it.
    let out = rotate(&mac, &plan, &["ssh-stage", AGENT], "");
    assert!(output_text(&out).contains("already has a pending key"));
    assert_eq!(read(&mac, &format!("{KEY}.pending.pub")), pending);

    // Not registered yet, or a marker naming another key: nothing switches.
    let marker = mac.on_mac(&format!(
        "{}/registered-keys/hexagent/deploy_halfday.pub",
        plan.support_dir
    ));
    let out = rotate(&mac, &plan, &["ssh-confirm", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("not marked as registered yet"));
    fs::create_dir_all(marker.parent().unwrap()).expect("marker folder");
    fs::write(&marker, &active).expect("stale marker");
    let out = rotate(&mac, &plan, &["ssh-confirm", AGENT], "");
    assert!(output_text(&out).contains("does not name the pending deploy_halfday"));
    assert_eq!(read(&mac, KEY), active_private);
    assert_eq!(public_keys(&mac, &plan), listed);

    // Registered: switched in one rename, old key gone, inventory and status follow.
    fs::write(&marker, &pending).expect("marker");
    let out = rotate(&mac, &plan, &["ssh-confirm", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("switched hexagent to its new deploy_halfday"));
    assert_eq!(read(&mac, &format!("{KEY}.pub")), pending);
    assert_ne!(read(&mac, KEY), active_private, "the old private key is gone");
    assert_eq!(mode_owner(&mac, KEY), (0o600, 1051, 1051));
    let derived = Command::new("ssh-keygen")
        .args(["-y", "-f"])
        .arg(mac.on_mac(KEY))
        .output()
        .expect("ssh-keygen");
    assert_eq!(
        key_material(&String::from_utf8_lossy(&derived.stdout)),
        key_material(&pending),
        "the active private key is the registered one"
    );
    for gone in [format!("{KEY}.pending"), format!("{KEY}.pending.pub")] {
        assert!(!mac.on_mac(&gone).exists(), "{gone}");
    }
    assert!(!marker.exists(), "the marker is used up");
    assert_eq!(
        public_keys(&mac, &plan),
        format!("hexagent deploy_halfday {pending}")
    );
    let entry = rotation_entry(&mac, &plan, "ssh-key/deploy_halfday");
    assert!(entry.contains("\"pending\":false"), "{entry}");
    assert!(entry.contains("\"rotated\":\"2026-01-01T00:00:00Z\""), "{entry}");
    let config = read(&mac, "/Users/hexagent/.ssh/config");
    assert!(
        config.contains("IdentityFile \"/Users/hexagent/.ssh/deploy_halfday\""),
        "{config}"
    );

    // A reinstall keeps the switched key and the inventory.
    mac.install(&plan).unwrap_or_else(|e| panic!("reinstall:\n{e}"));
    assert_eq!(read(&mac, &format!("{KEY}.pub")), pending);
    assert_eq!(
        public_keys(&mac, &plan),
        format!("hexagent deploy_halfday {pending}")
    );
}

#[test]
fn a_secret_is_replaced_from_standard_input() {
    let (mac, plan) = installed();
    let pat = "/Users/hexagent/.openclaw/secrets/github_pat";
    assert_eq!(read(&mac, pat), "");
    assert!(rotation_entry(&mac, &plan, "secret/github_pat").contains("\"rotated\":null"));
    let out = rotate(
        &mac,
        &plan,
        &["secret", AGENT, "github_pat"],
        "github_pat_11AAAA\n",
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(read(&mac, pat), "github_pat_11AAAA\n");
    assert_eq!(mode_owner(&mac, pat), (0o600, 1051, 1051));
    assert!(rotation_entry(&mac, &plan, "secret/github_pat").contains("2026-01-01T00:00:00Z"));
    assert!(!mac.commands().contains("github_pat_11AAAA"));
    let out = rotate(&mac, &plan, &["secret", AGENT, "github_pat"], "");
    assert!(output_text(&out).contains("no value for the secret github_pat"));
    assert_eq!(
        read(&mac, pat),
        "github_pat_11AAAA\n",
        "an empty value replaces nothing"
    );
    let out = rotate(&mac, &plan, &["secret", AGENT, "../../etc/x"], "v");
    assert!(output_text(&out).contains("has no secret named"));
}

const AGENT_TREES: &[&str] = &[
    "/Users/hexagent",
    "/Users/Shared/hexagent-workspace",
    "/Library/Logs/confine/hexagent",
];

/// Everything outside the agent's trees but root's record, the inventory, status.json and the token
/// itself, which a rotation updates (and the token the simulated gateway loaded).
fn outside_agent_trees(mac: &Mac, plan: &Fleet) -> BTreeMap<String, String> {
    let support = &plan.support_dir;
    let mut snap = mac.snapshot(true);
    snap.retain(|path, _| {
        !AGENT_TREES
            .iter()
            .any(|tree| path == tree || path.starts_with(&format!("{tree}/")))
            && !path.starts_with(&format!("{support}/records"))
            && *path != format!("{support}/status.json")
            && *path != format!("{support}/public-keys.txt")
            && path != TOKEN
            && !(path.starts_with("state/launchd/") && path.ends_with("/token"))
    });
    snap
}

#[test]
fn an_agent_racing_the_token_rotation_reaches_nothing_outside_its_trees() {
    let (mac, plan) = installed();
    let before = outside_agent_trees(&mac, &plan);
    let secrets = mac.on_mac("/Users/hexagent/.openclaw/secrets");
    let daemons = mac.on_mac("/Library/LaunchDaemons");
    // As the agent: swap the secrets folder for a link to root's daemons folder, and the token file for a
    // FIFO or a link to a root-owned plist, over and over.
    let racer = format!(
        "s='{s}'; d='{d}'
        while :; do
            mv -f \"$s\" \"$s.away\" 2>/dev/null; ln -sfn \"$d\" \"$s\" 2>/dev/null
            rm -f \"$s\" 2>/dev/null; mv -f \"$s.away\" \"$s\" 2>/dev/null
            rm -f \"$s/gateway-token\"; mkfifo \"$s/gateway-token\" 2>/dev/null
            rm -f \"$s/gateway-token\"; ln -sf \"$d/com.halfday.agents.hexagent.gateway.plist\" \"$s/gateway-token\" 2>/dev/null
            rm -f \"$s/gateway-token\"
        done",
        s = secrets.display(),
        d = daemons.display(),
    );
    let mut child = as_agent(&racer)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("racer");
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let recorded = read(&mac, &record(&plan, "gateway-token"));
        let out = rotate(&mac, &plan, &["gateway-token", AGENT], "");
        let text = output_text(&out);
        let now = read(&mac, &record(&plan, "gateway-token"));
        match out.status.code() {
            Some(0) => assert_ne!(now, recorded, "{text}"),
            Some(1) => {
                assert_eq!(now, recorded, "a failed rotation keeps root's record:\n{text}");
                assert!(
                    text.contains("the old token is back in place")
                        || text.contains("accepts neither the new nor the old token"),
                    "{text}"
                );
            }
            other => panic!("rotate ended with {other:?} (hung, or crashed):\n{text}"),
        }
        outcomes.push(out.status.code());
    }
    child.kill().expect("stop the racer");
    child.wait().expect("racer ends");
    assert_eq!(
        changed(&before, &outside_agent_trees(&mac, &plan)),
        Vec::<String>::new(),
        "outcomes: {outcomes:?}"
    );
    // Nothing the agent does leaves root's files in its trees: every file there is the agent's.
    walk(&mac.on_mac("/Users/hexagent/.openclaw"), &mut |path, meta| {
        assert_eq!(meta.uid(), 1051, "{} is not the agent's", path.display());
    });
    // With the racer gone, the agent's folder is put right and rotation works again.
    let out = rotate(&mac, &plan, &["gateway-token", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(read(&mac, TOKEN), read(&mac, &record(&plan, "gateway-token")));
    assert_eq!(loaded_token(&mac, &plan), read(&mac, TOKEN));
}

#[test]
fn rotate_parses_in_dash_and_bash_posix_and_passes_shellcheck() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = example();
    for f in confine::installer::support_files(&plan).expect("support files") {
        let name = f.path.rsplit('/').next().expect("a file name");
        fs::write(dir.path().join(name), &f.contents).expect("write");
    }
    for shell in [apple_sh(), DASH, BASH_POSIX] {
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .args(["-n", "rotate"])
            .current_dir(dir.path())
            .output()
            .expect("shell");
        assert!(out.status.success(), "{shell:?}: {}", output_text(&out));
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-x", "rotate", "credentials.sh"])
        .current_dir(dir.path())
        .output()
        .expect("shellcheck is installed");
    assert!(out.status.success(), "shellcheck:\n{}", output_text(&out));
}

/// The example fleet with rotation on: a weekly token, monthly deploy keys.
fn rotating(release: &str, rotation: &str) -> Fleet {
    let yaml = confine::spec::EXAMPLE
        .replace("release: 1.0.0", &format!("release: {release}"))
        .replace(
            "      secrets:\n",
            &format!("      rotation: {rotation}\n      secrets:\n"),
        );
    assert!(
        yaml.contains("rotation: "),
        "the example changed: update this test"
    );
    plan_from(&yaml)
}

/// A plist as Python's plistlib reads it, as JSON.
fn plist_json(mac: &Mac, path: &str) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(mac.on_mac(path))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

const TOKEN_DAEMON: &str = "com.halfday.agents.hexagent.rotate-gateway-token";
const STAGE_DAEMON: &str = "com.halfday.agents.hexagent.rotate-ssh-stage";
const CONFIRM_DAEMON: &str = "com.halfday.agents.hexagent.rotate-ssh-confirm";

#[test]
fn rotation_daemons_are_installed_kept_and_removed_with_the_spec() {
    let mac = Mac::new(apple_sh());
    let on = rotating(
        "1.0.0",
        "{ gateway_token: { every: weekly, at: \"03:15\" }, ssh_keys: { every: monthly } }",
    );
    mac.install(&on).unwrap_or_else(|e| panic!("install:\n{e}"));
    let support = "/Library/Application Support/confine/halfday-agents";
    let token = plist_json(&mac, &format!("/Library/LaunchDaemons/{TOKEN_DAEMON}.plist"));
    assert_eq!(
        token,
        serde_json::json!({
            "Label": TOKEN_DAEMON,
            "ProgramArguments": ["/bin/sh", format!("{support}/rotate"), "gateway-token", "hexagent"],
            "StartCalendarInterval": {"Hour": 3, "Minute": 15, "Weekday": 0},
            "RunAtLoad": false,
            "ProcessType": "Background",
            "StandardInPath": "/dev/null",
            "StandardOutPath": "/Library/Logs/confine/halfday-agents-rotation.log",
            "StandardErrorPath": "/Library/Logs/confine/halfday-agents-rotation.log",
        })
    );
    let stage = plist_json(&mac, &format!("/Library/LaunchDaemons/{STAGE_DAEMON}.plist"));
    assert_eq!(
        stage["StartCalendarInterval"],
        serde_json::json!({"Hour": 3, "Minute": 0, "Day": 1})
    );
    let confirm = plist_json(&mac, &format!("/Library/LaunchDaemons/{CONFIRM_DAEMON}.plist"));
    let registered = format!("{support}/registered-keys/hexagent");
    assert_eq!(confirm["WatchPaths"], serde_json::json!([registered]));
    assert_eq!(confirm["StartInterval"], 3600);
    assert_eq!(confirm.get("UserName"), None, "root runs rotation");
    assert_eq!(mode_owner(&mac, &registered), (0o755, 0, 0));
    for label in [TOKEN_DAEMON, STAGE_DAEMON, CONFIRM_DAEMON] {
        assert!(
            mac.state.join("launchd").join(label).is_dir(),
            "{label} is loaded"
        );
        assert_eq!(
            mode_owner(&mac, &format!("/Library/LaunchDaemons/{label}.plist")),
            (0o644, 0, 0)
        );
    }

    // An unchanged release leaves them loaded as they are.
    mac.clear_commands();
    mac.install(&on).unwrap_or_else(|e| panic!("reinstall:\n{e}"));
    let log = mac.commands();
    for verb in ["bootout", "bootstrap", "enable"] {
        let touched = log
            .lines()
            .any(|l| l.starts_with(&format!("launchctl {verb}")) && l.contains(".rotate-"));
        assert!(!touched, "{verb}:\n{log}");
    }

    // A release without the token schedule removes that daemon only.
    let fewer = rotating("1.0.1", "{ ssh_keys: { every: monthly } }");
    mac.install(&fewer).unwrap_or_else(|e| panic!("upgrade:\n{e}"));
    assert!(
        !mac.on_mac(&format!("/Library/LaunchDaemons/{TOKEN_DAEMON}.plist"))
            .exists()
    );
    assert!(!mac.state.join("launchd").join(TOKEN_DAEMON).exists());
    assert!(mac.state.join("launchd").join(STAGE_DAEMON).is_dir());

    // Uninstall removes the rest.
    let out = mac.uninstall(&fewer);
    assert!(out.status.success(), "{}", output_text(&out));
    for label in [STAGE_DAEMON, CONFIRM_DAEMON] {
        assert!(
            !mac.on_mac(&format!("/Library/LaunchDaemons/{label}.plist"))
                .exists()
        );
        assert!(!mac.state.join("launchd").join(label).exists(), "{label}");
    }
}

#[test]
fn the_mdm_secret_script_replaces_the_secret_from_a_jamf_parameter_or_stdin() {
    let (mac, plan) = installed();
    let scripts = confine::installer::secret_scripts(&plan).expect("scripts");
    assert_eq!(scripts.len(), 1);
    assert_eq!(scripts[0].path, "mdm/rotate-secret-hexagent-github_pat.sh");
    // On the simulated Mac the support folder is under the volume.
    let rotate_on_mac = format!("{}/rotate", plan.support_dir);
    let text = String::from_utf8(scripts[0].contents.clone()).expect("utf-8");
    assert!(text.contains(&format!("ROTATE='{rotate_on_mac}'")), "{text}");
    let script = mac.state.join("rotate-secret.sh");
    fs::write(
        &script,
        text.replace(
            &rotate_on_mac,
            mac.on_mac(&rotate_on_mac).to_str().expect("utf-8"),
        ),
    )
    .expect("write");
    let pat = "/Users/hexagent/.openclaw/secrets/github_pat";
    let run = |args: &[&str], stdin: &str| {
        let mut command = Command::new("dash");
        command.arg(&script).args(args);
        run_as_root(&mac, command, stdin)
    };
    // Jamf Pro: $1 mount point, $2 computer name, $3 user, $4 the first script parameter.
    let out = run(&["/", "mac-01", "admin", "ghp_fromJamf"], "");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(read(&mac, pat), "ghp_fromJamf\n");
    let out = run(&[], "ghp_fromStdin\n");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(read(&mac, pat), "ghp_fromStdin\n");
    assert_eq!(mode_owner(&mac, pat), (0o600, 1051, 1051));
    let log = mac.commands();
    assert!(
        !log.contains("ghp_from"),
        "the value reached an argument list:\n{log}"
    );
}

/// `confine validate` on the example with `rotation` set to `value`: exit 1 and stderr.
fn rejected_rotation(value: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = crate::util::example_with(
        "      secrets:\n",
        &format!("      rotation: {value}\n      secrets:\n"),
    );
    crate::util::refused(&crate::util::write(dir.path(), "fleet.yaml", &yaml))
}

#[test]
fn bad_rotation_schedules_are_located_errors() {
    let line = confine::spec::EXAMPLE
        .lines()
        .position(|l| l == "      secrets:")
        .expect("the example has secrets")
        + 1;
    let err = rejected_rotation("{ gateway_token: { every: weekly, at: \"25:00\" } }");
    assert!(err.contains(&format!("fleet.yaml:{line}:")), "{err}");
    assert!(err.contains("`25:00` is not a time of day"), "{err}");
    assert!(err.contains("\"HH:MM\""), "{err}");
    let err = rejected_rotation("{ gateway_token: { every: hourly } }");
    assert!(err.contains(&format!("fleet.yaml:{line}:")), "{err}");
    assert!(err.contains("hourly"), "{err}");
    let err = rejected_rotation("{ pat: { every: daily } }");
    assert!(err.contains("pat"), "{err}");
    let no_keys = crate::util::example_with(
        "      ssh_keys:\n        - name: deploy_halfday    # ~/.ssh/deploy_halfday, generated on the Mac (ed25519)\n          host: github.com\n          user: git\n          comment: hexagent-deploy-halfday\n",
        "      rotation: { ssh_keys: { every: monthly } }\n",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let err = crate::util::refused(&crate::util::write(dir.path(), "fleet.yaml", &no_keys));
    assert!(
        err.contains("`rotation.ssh_keys` is set, but the agent has no `ssh_keys`"),
        "{err}"
    );
}

#[test]
fn a_pending_key_the_agent_swapped_for_a_link_is_never_followed() {
    let (mac, plan) = installed();
    let out = rotate(&mac, &plan, &["ssh-stage", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    let before = outside_agent_trees(&mac, &plan);
    let pending = read(&mac, &format!("{KEY}.pending.pub"));
    let marker = mac.on_mac(&format!(
        "{}/registered-keys/hexagent/deploy_halfday.pub",
        plan.support_dir
    ));
    fs::write(&marker, &pending).expect("marker");
    // As the agent: the pending key becomes a link to root's daemon plist.
    let plist = mac.on_mac("/Library/LaunchDaemons/com.halfday.agents.hexagent.gateway.plist");
    let link = mac.on_mac(&format!("{KEY}.pending"));
    let status = as_agent(&format!(
        "rm -f '{0}' && ln -s '{1}' '{0}'",
        link.display(),
        plist.display()
    ))
    .status()
    .expect("setpriv");
    assert!(status.success());
    let active_private = read(&mac, KEY);

    let out = rotate(&mac, &plan, &["ssh-confirm", AGENT], "");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("it was a symbolic link"), "{text}");
    assert!(text.contains("the next ssh-stage makes a new one"), "{text}");
    assert_eq!(read(&mac, KEY), active_private, "the active key stays");
    assert_eq!(mode_owner(&mac, KEY), (0o600, 1051, 1051));
    // Nothing outside the agent's trees changed (the marker, written after the snapshot, is used up).
    assert_eq!(
        changed(&before, &outside_agent_trees(&mac, &plan)),
        Vec::<String>::new()
    );
    assert!(!marker.exists());
    assert!(!public_keys(&mac, &plan).contains(".pending"));
    // The next stage makes a fresh pending key.
    let out = rotate(&mac, &plan, &["ssh-stage", AGENT], "");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_ne!(read(&mac, &format!("{KEY}.pending.pub")), pending);
}

#[test]
fn the_examples_rotation_block_is_valid_once_uncommented() {
    let yaml = confine::spec::EXAMPLE
        .replace("      # rotation:", "      rotation:")
        .replace("      #   gateway_token:", "        gateway_token:")
        .replace("      #   ssh_keys:", "        ssh_keys:");
    let fleet = plan_from(&yaml);
    let enabled: Vec<&str> = fleet.agents[0]
        .rotation
        .iter()
        .filter(|d| d.enabled)
        .map(|d| d.label.as_str())
        .collect();
    assert_eq!(enabled, [TOKEN_DAEMON, STAGE_DAEMON, CONFIRM_DAEMON]);
}
