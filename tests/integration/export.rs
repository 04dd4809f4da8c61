//! `confine export`: every exported file read back by an independent reader (Python's plistlib, PyYAML,
//! bsdtar, cpio, sha256sum, md5sum) and each derived value checked against the package actually built.
//!
//! Sources the checks follow, besides the files' own formats:
//! - Munki: munki/munki at 83accce6367e, `code/cli/munki/shared/admin/pkginfolib.swift` (sizes in KiB
//!   rounded down, SHA-256 hashes, the `uninstaller_item` keys, catalogs default `testing`) and
//!   `code/cli/munki/shared/utils/pkgutils.swift` (`receiptFromPackageInfoFile`: a receipt per PackageInfo
//!   with a `<payload>`, its `installKBytes`; `getMinOSVersFromDist`: `//volume-check/allowed-os-versions`).
//! - Fleet: fleetdm/fleet `pkg/spec/gitops.go` at 00b32fd0a466 (the top-level keys, `controls` keys with
//!   the `apple_settings` rename, `software` keys, package YAML validated as `fleet.SoftwarePackageSpec`,
//!   unknown keys are errors, `hash_sha256` lower-case hex) and `pkg/spec/spec.go` (`expandEnv`,
//!   `escapeString`), `server/service/...` `MaybeExpand` (after Go's `os.Expand`).
//! - Apple MDM: apple/device-management at b6202ca2fbd3: `mdm/commands/application.install.enterprise.yaml`,
//!   `mdm/commands/profile.install.yaml`, `other/manifesturl.yaml`. (The shared copy in ../shared has only
//!   the profile schemas, so the command keys are written out below, each list as the schema has it.)
//!
//! What only the real thing would confirm: `makecatalogs` accepting the tree and a Munki client
//! installing and removing through it; `fleetctl gitops --dry-run` against a Fleet server; NanoMDM
//! queueing the commands and a Mac installing from the manifest.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use confine::build::BuildOptions;
use confine::export::{Target, export};
use confine::spec::LoadedSpec;
use serde_json::Value;

use crate::sim::{self, BASH_POSIX, DASH, Mac, output_text};
use crate::util;

const EXPORTS: &str = "
exports:
  url: https://packages.example.com/agents/{file}
  munki:
    subdir: agents/confine
    catalogs: [testing, production]
    installs: true
  fleet:
    team: Halfday Labs
  self_service: true
";

/// The example with the exports above, and an organization (which profiles carry) holding the `$`
/// Fleet would expand.
fn spec_text() -> String {
    let example = util::example_with("organization: Halfday ", r#"organization: "Halfday $HOME \\$1" "#);
    format!("{example}{EXPORTS}")
}

fn loaded(text: &str) -> LoadedSpec {
    confine::spec::load_text(text, Path::new("fleet.yaml"), PathBuf::from("."))
        .unwrap_or_else(|e| panic!("spec is invalid: {e:?}"))
}

/// A build of the example with exports, in a temp dir: (dir, build folder, spec).
fn built() -> (tempfile::TempDir, PathBuf, LoadedSpec) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dist = dir.path().join("dist");
    let loaded = loaded(&spec_text());
    let options = BuildOptions {
        out: dist.clone(),
        ..BuildOptions::default()
    };
    confine::build::build(&loaded, &options).expect("build");
    (dir, dist, loaded)
}

fn exported(target: Target) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, dist, loaded) = built();
    let out = dir.path().join("out");
    export(&loaded, target, &dist, &out).expect("export");
    (dir, dist, out)
}

fn run(command: &mut Command) -> Vec<u8> {
    let out = command.output().expect("runs");
    assert!(out.status.success(), "{command:?}: {}", output_text(&out));
    out.stdout
}

/// A property list as JSON, read by Python's plistlib (`<data>` as hex).
fn plist(path: &Path) -> Value {
    let script = "import json, plistlib, sys\n\
        with open(sys.argv[1], 'rb') as f: value = plistlib.load(f)\n\
        print(json.dumps(value, default=lambda b: b.hex()))";
    let out = run(Command::new("python3").args(["-c", script]).arg(path));
    serde_json::from_slice(&out).expect("plistlib output is JSON")
}

/// A YAML file as JSON, read by PyYAML's safe loader with duplicate keys refused (Fleet's YAML reader,
/// ghodss/yaml over go-yaml, refuses them too).
fn yaml(path: &Path) -> Value {
    let script = "import json, sys, yaml\n\
        class Strict(yaml.SafeLoader): pass\n\
        def mapping(loader, node):\n\
        \x20   keys = [loader.construct_object(k) for k, _ in node.value]\n\
        \x20   assert len(keys) == len(set(keys)), 'duplicate key'\n\
        \x20   return loader.construct_mapping(node)\n\
        Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)\n\
        with open(sys.argv[1]) as f: print(json.dumps(yaml.load(f, Loader=Strict)))";
    let out = run(Command::new("python3").args(["-c", script]).arg(path));
    serde_json::from_slice(&out).expect("PyYAML output is JSON")
}

/// What independent tools say about a built package: digests (sha256sum, md5sum), size, and the receipts,
/// product version and minimum macOS as Munki's pkgutils would read them, from the files bsdtar extracts.
struct Oracle {
    sha256: String,
    size: u64,
    receipts: Vec<(String, String, u64)>,
    product_version: String,
    allowed_os_min: String,
    in_volume_check: bool,
}

fn digest(tool: &str, path: &Path) -> String {
    let out = run(Command::new(tool).arg(path));
    String::from_utf8(out)
        .expect("utf-8")
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

fn oracle(pkg: &Path) -> Oracle {
    let listing = String::from_utf8(run(Command::new("bsdtar").arg("-tf").arg(pkg))).expect("utf-8");
    let extract = |entry: &str| run(Command::new("bsdtar").arg("-xOf").arg(pkg).arg(entry));
    let script = "import json, sys, xml.etree.ElementTree as ET\n\
        root = ET.fromstring(sys.stdin.buffer.read())\n\
        if root.tag == 'pkg-info':\n\
        \x20   p = root.find('payload')\n\
        \x20   print(json.dumps(None if p is None else [root.get('identifier'), root.get('version'), int(p.get('installKBytes'))]))\n\
        else:\n\
        \x20   os = root.find('allowed-os-versions/os-version')\n\
        \x20   print(json.dumps([root.find('product').get('version'), os.get('min'), root.find('volume-check') is not None]))";
    let parse = |bytes: Vec<u8>| -> Value {
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&bytes)
            .expect("write");
        let out = child.wait_with_output().expect("python3");
        assert!(out.status.success(), "{}", output_text(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let mut receipts = Vec::new();
    for entry in listing.lines().filter(|l| l.ends_with("PackageInfo")) {
        if let Value::Array(r) = parse(extract(entry)) {
            receipts.push((
                r[0].as_str().expect("id").to_owned(),
                r[1].as_str().expect("version").to_owned(),
                r[2].as_u64().expect("kbytes"),
            ));
        }
    }
    let distribution = parse(extract("Distribution"));
    Oracle {
        sha256: digest("sha256sum", pkg),
        size: fs::metadata(pkg).expect("pkg").len(),
        receipts,
        product_version: distribution[0].as_str().expect("version").to_owned(),
        allowed_os_min: distribution[1].as_str().expect("min").to_owned(),
        in_volume_check: distribution[2].as_bool().expect("bool"),
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("a dictionary")
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_keys_within(value: &Value, allowed: &[&str], what: &str) {
    let unknown: Vec<&str> = keys(value).into_iter().filter(|k| !allowed.contains(k)).collect();
    assert!(
        unknown.is_empty(),
        "{what}: keys the reader does not know: {unknown:?}"
    );
}

#[test]
fn munki_pkginfo_is_what_makepkginfo_would_derive_from_the_package_built() {
    let (_dir, dist, out) = exported(Target::Munki);
    let install = dist.join("halfday-agents-1.0.0.pkg");
    let uninstall = dist.join("halfday-agents-uninstall-1.0.0.pkg");
    let facts = oracle(&install);
    let info = plist(&out.join("pkgsinfo/agents/confine/halfday-agents-1.0.0.plist"));

    assert_eq!(info["name"], "halfday-agents");
    assert_eq!(info["version"], facts.product_version.as_str());
    assert_eq!(info["version"], "1.0.0");
    assert_eq!(
        info["installer_item_location"],
        "agents/confine/halfday-agents-1.0.0.pkg"
    );
    assert_eq!(info["installer_item_hash"], facts.sha256.as_str());
    assert_eq!(info["installer_item_size"], facts.size / 1024);
    // One receipt: the install component's. The uninstall package has no payload and leaves none.
    assert_eq!(
        facts.receipts,
        vec![(
            "com.halfday.agents".to_owned(),
            "1.0.0".to_owned(),
            facts.receipts[0].2
        )]
    );
    assert!(
        oracle(&uninstall).receipts.is_empty(),
        "the uninstall package leaves no receipt"
    );
    let receipts = info["receipts"].as_array().expect("receipts");
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["packageid"], "com.halfday.agents");
    assert_eq!(receipts[0]["version"], "1.0.0");
    assert_eq!(receipts[0]["installed_size"], facts.receipts[0].2);
    assert_eq!(info["installed_size"], facts.receipts[0].2);
    // Munki reads a minimum OS only inside <volume-check>, which the Distribution does not have: it must
    // be written explicitly, and it is the Distribution's own.
    assert!(!facts.in_volume_check);
    assert_eq!(info["minimum_os_version"], facts.allowed_os_min.as_str());
    assert_eq!(info["uninstallable"], true);
    assert_eq!(info["uninstall_method"], "uninstall_package");
    assert_eq!(
        info["uninstaller_item_location"],
        "agents/confine/halfday-agents-uninstall-1.0.0.pkg"
    );
    assert_eq!(
        info["uninstaller_item_hash"],
        digest("sha256sum", &uninstall).as_str()
    );
    assert_eq!(
        info["uninstaller_item_size"],
        fs::metadata(&uninstall).unwrap().len() / 1024
    );
    assert_eq!(info["minimum_munki_version"], "6.2");
    assert_eq!(info["unattended_install"], true);
    assert_eq!(info["unattended_uninstall"], true);
    assert_eq!(info["catalogs"], serde_json::json!(["testing", "production"]));
    assert!(
        info.get("_metadata").is_none(),
        "no creation date: exports are deterministic"
    );

    // `installs`: each gateway plist at its Mac path, its MD5 that of the bytes in the package's payload.
    let installs = info["installs"].as_array().expect("installs");
    assert_eq!(installs.len(), 1);
    let plist_path = "/Library/LaunchDaemons/com.halfday.agents.hexagent.gateway.plist";
    assert_eq!(installs[0]["path"], plist_path);
    assert_eq!(installs[0]["type"], "file");
    let payload_plist = run(Command::new("sh")
        .args(["-c", "bsdtar -xOf \"$1\" com.halfday.agents.pkg/Payload | gzip -dc | cpio -i --to-stdout --quiet \"*$2\"", "sh"])
        .arg(&install)
        .arg(plist_path));
    assert!(!payload_plist.is_empty(), "the plist is in the payload");
    let scratch = out.join("../payload.plist");
    fs::write(&scratch, &payload_plist).unwrap();
    assert_eq!(installs[0]["md5checksum"], digest("md5sum", &scratch).as_str());

    // The repo's pkgs/ holds the very packages described.
    for (built, copied) in [
        (&install, "pkgs/agents/confine/halfday-agents-1.0.0.pkg"),
        (
            &uninstall,
            "pkgs/agents/confine/halfday-agents-uninstall-1.0.0.pkg",
        ),
    ] {
        assert_eq!(
            fs::read(built).unwrap(),
            fs::read(out.join(copied)).unwrap(),
            "{copied}"
        );
    }
}

#[test]
fn the_workspace_one_pkginfo_uninstalls_with_the_script_the_package_left() {
    let (_dir, dist, out) = exported(Target::Munki);
    let info = plist(&out.join("workspace-one/halfday-agents-1.0.0.plist"));
    let facts = oracle(&dist.join("halfday-agents-1.0.0.pkg"));
    assert_eq!(info["installer_item_location"], "halfday-agents-1.0.0.pkg");
    assert_eq!(info["installer_item_hash"], facts.sha256.as_str());
    assert_eq!(info["uninstall_method"], "uninstall_script");
    assert!(info.get("uninstaller_item_location").is_none());
    let script = info["uninstall_script"].as_str().expect("script");
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(
        script.contains("exec '/Library/Application Support/confine/halfday-agents/uninstall'"),
        "{script}"
    );
    // The uninstaller it runs is in the install package's payload.
    let listing = run(Command::new("sh")
        .args([
            "-c",
            "bsdtar -xOf \"$1\" com.halfday.agents.pkg/Payload | gzip -dc | cpio -it --quiet",
            "sh",
        ])
        .arg(dist.join("halfday-agents-1.0.0.pkg")));
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches('.')
                == "/Library/Application Support/confine/halfday-agents/uninstall"),
        "{listing}"
    );
}

/// Fleet's keys (gitops.go at 00b32fd0a466): `topKeys`; `GitOpsControls` json tags (with the
/// `apple_settings` rename); `Software`; `fleet.SoftwarePackageSpec` as validated by `validateYAMLKeys`.
const FLEET_TOP_KEYS: &[&str] = &[
    "name",
    "settings",
    "org_settings",
    "agent_options",
    "controls",
    "policies",
    "reports",
    "software",
    "labels",
    "custom_host_vitals",
];
const FLEET_CONTROLS_KEYS: &[&str] = &[
    "macos_updates",
    "ios_updates",
    "ipados_updates",
    "apple_settings",
    "setup_experience",
    "macos_migration",
    "apple_account_provisioning",
    "windows_updates",
    "windows_settings",
    "windows_enabled_and_configured",
    "windows_migration_enabled",
    "enable_turn_on_windows_mdm_manually",
    "windows_entra_tenant_ids",
    "windows_entra_client_ids",
    "android_enabled_and_configured",
    "android_settings",
    "linux_settings",
    "apple_require_hardware_attestation",
    "enable_disk_encryption",
    "enable_recovery_lock_password",
    "windows_require_bitlocker_pin",
    "name_template",
    "scripts",
];
const FLEET_SOFTWARE_KEYS: &[&str] = &["packages", "app_store_apps", "fleet_maintained_apps"];
const FLEET_PACKAGE_KEYS: &[&str] = &[
    "url",
    "hash_sha256",
    "self_service",
    "pre_install_query",
    "install_script",
    "post_install_script",
    "uninstall_script",
    "labels_include_any",
    "labels_exclude_any",
    "labels_include_all",
    "categories",
    "display_name",
    "icon",
    "install_during_setup",
    "setup_experience",
    "configuration",
];

#[test]
fn fleet_files_pass_fleets_parser_rules_and_describe_the_package_built() {
    let (_dir, dist, out) = exported(Target::Fleet);
    let facts = oracle(&dist.join("halfday-agents-1.0.0.pkg"));

    let snippet_path = out.join("fleets/halfday-labs.snippet.yml");
    let snippet = yaml(&snippet_path);
    assert_keys_within(&snippet, FLEET_TOP_KEYS, "fleet file");
    assert_eq!(snippet["name"], "Halfday Labs");
    assert_keys_within(&snippet["controls"], FLEET_CONTROLS_KEYS, "controls");
    assert_keys_within(&snippet["software"], FLEET_SOFTWARE_KEYS, "software");
    let header = fs::read_to_string(&snippet_path).unwrap();
    assert!(
        header.starts_with("# Generated by `confine export fleet`") && header.contains("00b32fd0a466"),
        "{header}"
    );

    // Every path resolves from the file that names it, as gitops.go resolves them.
    let fleets = out.join("fleets");
    let package_rel = snippet["software"]["packages"][0]["path"]
        .as_str()
        .expect("package path");
    let package_path = fleets.join(package_rel);
    let package = yaml(&package_path);
    assert_keys_within(&package, FLEET_PACKAGE_KEYS, "package YAML");
    assert_eq!(
        package["url"],
        "https://packages.example.com/agents/halfday-agents-1.0.0.pkg"
    );
    let hash = package["hash_sha256"].as_str().expect("hash");
    assert_eq!(hash, facts.sha256);
    assert!(hash.len() == 64 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    assert_eq!(package["self_service"], true);
    assert_keys_within(&package["uninstall_script"], &["path"], "uninstall_script");
    let uninstall = package_path
        .parent()
        .unwrap()
        .join(package["uninstall_script"]["path"].as_str().unwrap());
    let uninstall = fs::read_to_string(&uninstall).expect("the uninstall script is where the YAML says");
    assert!(uninstall.contains("exec '/Library/Application Support/confine/halfday-agents/uninstall'"));
    for script in snippet["controls"]["scripts"].as_array().expect("scripts") {
        assert!(
            fleets.join(script["path"].as_str().unwrap()).is_file(),
            "{script}"
        );
    }

    // Profiles: Fleet expands `$VAR` in them; after its unescaping they are the bytes confine built.
    let profiles = snippet["controls"]["apple_settings"]["configuration_profiles"]
        .as_array()
        .expect("profiles");
    let built: Vec<_> = fs::read_dir(dist.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(profiles.len(), built.len());
    assert!(
        built
            .iter()
            .any(|p| fs::read_to_string(p).unwrap().contains("$HOME")),
        "a built profile holds a `$` for Fleet to leave alone"
    );
    for entry in profiles {
        let path = fleets.join(entry["path"].as_str().unwrap());
        let escaped = fs::read_to_string(&path).expect("profile");
        let original = fs::read_to_string(dist.join("profiles").join(path.file_name().unwrap())).unwrap();
        assert_eq!(
            fleet_expand(&escaped).expect("Fleet expands nothing"),
            original,
            "{}",
            path.display()
        );
    }
}

/// Fleet's `expandEnv` with an empty environment: `escapeString`, then `MaybeExpand` (Go's `os.Expand`
/// name rules). A reference to a variable Fleet would expand is an error, as Fleet reports an unset one.
fn fleet_expand(text: &str) -> Result<String, String> {
    const PREFIX: &str = "PREVENT_ESCAPING_0123456789abcdef";
    let bytes = text.as_bytes();
    let mut escaped = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i] == b'\\' {
            i += 1;
        }
        let run = i - start;
        if i < bytes.len() && bytes[i] == b'$' && run > 0 && (run + 1) % 2 == 0 {
            escaped.push_str(&"\\".repeat((run - 1) / 2));
            escaped.push('$');
            escaped.push_str(PREFIX);
            i += 1;
        } else if run > 0 {
            escaped.push_str(&text[start..i]);
        } else {
            let c = text[i..].chars().next().unwrap();
            escaped.push(c);
            i += c.len_utf8();
        }
    }
    let s = escaped.as_bytes();
    let mut out = String::new();
    let mut j = 0;
    while j < s.len() {
        if s[j] == b'$' && j + 1 < s.len() {
            let (name, width) = shell_name(&escaped[j + 1..]);
            if name.is_empty() {
                out.push('$');
                j += 1;
            } else if let Some(rest) = name.strip_prefix(PREFIX) {
                out.push('$');
                out.push_str(rest);
                j += 1 + width;
            } else {
                return Err(format!("environment variable {name:?} not set"));
            }
        } else {
            let c = escaped[j..].chars().next().unwrap();
            out.push(c);
            j += c.len_utf8();
        }
    }
    Ok(out)
}

/// Go's `os.getShellName`.
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    let special = |c: u8| b"*#$@!?-".contains(&c) || c.is_ascii_digit();
    if b[0] == b'{' {
        if b.len() > 2 && special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        return match s[1..].find('}') {
            Some(0) => ("", 2),
            Some(end) => (&s[1..1 + end], end + 2),
            None => ("", 1),
        };
    }
    if special(b[0]) {
        return (&s[0..1], 1);
    }
    let end = b
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        .unwrap_or(b.len());
    (&s[..end], end)
}

#[test]
fn every_dollar_survives_fleets_expansion() {
    let text = r"a $HOME b ${X} c \$y \\$z $1 ${} $$ end$";
    let escaped = confine::export::fleet::escape_dollars(text.as_bytes());
    let escaped = String::from_utf8(escaped).unwrap();
    assert_eq!(fleet_expand(&escaped), Ok(text.to_owned()));
    assert!(fleet_expand(text).is_err(), "unescaped, Fleet would expand $HOME");
}

/// Keys of apple/device-management `mdm/commands/application.install.enterprise.yaml` (plus RequestType).
const INSTALL_ENTERPRISE_KEYS: &[&str] = &[
    "RequestType",
    "Manifest",
    "ManifestURL",
    "ManifestURLPinningCerts",
    "PinningRevocationCheckRequired",
    "InstallAsManaged",
    "ManagementFlags",
    "Configuration",
    "ChangeManagementState",
    "iOSApp",
];
/// `other/manifesturl.yaml`: an item, an asset, the metadata.
const MANIFEST_ITEM_KEYS: &[&str] = &["assets", "metadata"];
const MANIFEST_ASSET_KEYS: &[&str] = &[
    "kind",
    "md5-size",
    "md5s",
    "sha256-size",
    "sha256s",
    "url",
    "needs-shine",
];
const MANIFEST_METADATA_KEYS: &[&str] = &[
    "bundle-identifier",
    "bundle-version",
    "kind",
    "sizeInBytes",
    "subtitle",
    "title",
    "items",
];

#[test]
fn apple_mdm_commands_follow_apples_schema_and_hash_the_package_built() {
    let (_dir, dist, out) = exported(Target::AppleMdm);
    let install = dist.join("halfday-agents-1.0.0.pkg");
    let facts = oracle(&install);

    let command = plist(&out.join("commands/InstallEnterpriseApplication.plist"));
    assert_keys_within(&command, &["Command", "CommandUUID"], "command");
    let uuid = command["CommandUUID"].as_str().expect("uuid");
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid, uuid.to_uppercase());
    let body = &command["Command"];
    assert_eq!(body["RequestType"], "InstallEnterpriseApplication");
    assert_keys_within(body, INSTALL_ENTERPRISE_KEYS, "InstallEnterpriseApplication");
    let manifest = &body["Manifest"];
    assert_eq!(
        manifest,
        &plist(&out.join("manifest.plist")),
        "the hosted manifest is the inline one"
    );
    let item = &manifest["items"][0];
    assert_keys_within(item, MANIFEST_ITEM_KEYS, "manifest item");
    let asset = &item["assets"][0];
    assert_keys_within(asset, MANIFEST_ASSET_KEYS, "asset");
    assert_eq!(asset["kind"], "software-package");
    assert_eq!(
        asset["url"],
        "https://packages.example.com/agents/halfday-agents-1.0.0.pkg"
    );
    let metadata = &item["metadata"];
    assert_keys_within(metadata, MANIFEST_METADATA_KEYS, "metadata");
    assert_eq!(metadata["kind"], "software");
    assert_eq!(metadata["bundle-identifier"], "com.halfday.agents");
    assert_eq!(metadata["bundle-version"], facts.product_version.as_str());
    assert!(metadata["title"].as_str().is_some_and(|t| !t.is_empty()));

    // The chunk digests, recomputed by Python's hashlib over 10 MiB chunks of the package.
    let script = "import hashlib, json, sys\n\
        md5s, sha256s = [], []\n\
        with open(sys.argv[1], 'rb') as f:\n\
        \x20   while chunk := f.read(10 * 1024 * 1024):\n\
        \x20       md5s.append(hashlib.md5(chunk).hexdigest()); sha256s.append(hashlib.sha256(chunk).hexdigest())\n\
        print(json.dumps([md5s, sha256s]))";
    let chunks: Value =
        serde_json::from_slice(&run(Command::new("python3").args(["-c", script]).arg(&install))).unwrap();
    assert_eq!(asset["md5-size"], 10 * 1024 * 1024);
    assert_eq!(asset["sha256-size"], 10 * 1024 * 1024);
    assert_eq!(asset["md5s"], chunks[0]);
    assert_eq!(asset["sha256s"], chunks[1]);
    assert_eq!(
        facts.size <= 10 * 1024 * 1024,
        chunks[0].as_array().unwrap().len() == 1
    );

    // One InstallProfile per profile, its Payload the profile's bytes.
    let profiles: Vec<PathBuf> = fs::read_dir(dist.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(!profiles.is_empty());
    let mut uuids = BTreeSet::from([uuid.to_owned()]);
    for profile in profiles {
        let stem = profile.file_stem().unwrap().to_str().unwrap();
        let command = plist(&out.join(format!("commands/InstallProfile-{stem}.plist")));
        assert_keys_within(&command["Command"], &["RequestType", "Payload"], "InstallProfile");
        assert_eq!(command["Command"]["RequestType"], "InstallProfile");
        let expected: String = fs::read(&profile)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(command["Command"]["Payload"], expected.as_str(), "{stem}");
        assert!(
            uuids.insert(command["CommandUUID"].as_str().unwrap().to_owned()),
            "UUIDs differ"
        );
    }
}

#[test]
fn an_export_is_deterministic_and_refuses_a_build_that_changed() {
    let (dir, dist, loaded) = built();
    for target in [Target::Munki, Target::Fleet, Target::AppleMdm, Target::Inventory] {
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        export(&loaded, target, &dist, &a).expect("export");
        export(&loaded, target, &dist, &b).expect("export");
        assert_eq!(util::tree(&a), util::tree(&b), "{target:?}");
        fs::remove_dir_all(&a).unwrap();
        fs::remove_dir_all(&b).unwrap();
    }
    let pkg = dist.join("halfday-agents-1.0.0.pkg");
    let mut bytes = fs::read(&pkg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&pkg, bytes).unwrap();
    let out = dir.path().join("stale");
    let err = format!("{:#}", export(&loaded, Target::Munki, &dist, &out).unwrap_err());
    assert!(
        err.contains("no longer matches the build's manifest.json"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");
    let err = format!(
        "{:#}",
        export(&loaded, Target::Munki, &dir.path().join("nothing"), &out).unwrap_err()
    );
    assert!(err.contains("run `confine build"), "{err}");
}

#[test]
fn the_command_line_exports_and_says_what_a_spec_without_a_url_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let with = util::write(dir.path(), "fleet.yaml", &spec_text());
    util::confine()
        .current_dir(dir.path())
        .args(["build", "fleet.yaml", "--out", "dist"])
        .assert()
        .success();
    util::confine()
        .current_dir(dir.path())
        .args([
            "export",
            "munki",
            "fleet.yaml",
            "--build",
            "dist",
            "--out",
            "munki",
        ])
        .assert()
        .success();
    assert!(
        dir.path()
            .join("munki/pkgsinfo/agents/confine/halfday-agents-1.0.0.plist")
            .is_file()
    );
    fs::write(&with, util::example_spec()).unwrap();
    let out = util::confine()
        .current_dir(dir.path())
        .args([
            "export",
            "fleet",
            "fleet.yaml",
            "--build",
            "dist",
            "--out",
            "gitops",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        util::stderr(&out).contains("needs the URL Macs download packages from"),
        "{}",
        util::stderr(&out)
    );
    assert!(!dir.path().join("gitops").exists());
}

#[test]
fn bad_exports_values_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = util::example_spec().lines().count();
    let text = format!(
        "{}\nexports:\n  url: http://packages.example.com/{{file}}\n  munki:\n    subdir: ../up\n    catalogs: []\n  fleet:\n    team: \"\"\n",
        util::example_spec()
    );
    let err = util::refused(&util::write(dir.path(), "fleet.yaml", &text));
    for (line, what) in [
        (base + 3, "is not https"),
        (base + 5, "is not a relative folder"),
        (base + 6, "no Munki catalog"),
        (base + 8, "is not a usable name"),
    ] {
        assert!(
            err.contains(&format!("fleet.yaml:{line}:")),
            "line {line} ({what}): {err}"
        );
        assert!(err.contains(what), "{what}: {err}");
    }
}

/// The inventory scripts as a Mac runs them, but reading the simulated Mac's support folder.
fn on_sim(mac: &Mac, script: &[u8], support: &str) -> Vec<u8> {
    let text = String::from_utf8(script.to_vec()).unwrap();
    let line = format!("SUPPORT='{support}'");
    assert_eq!(text.matches(&line).count(), 1, "{text}");
    text.replace(&line, &format!("SUPPORT='{}'", mac.on_mac(support).display()))
        .into_bytes()
}

fn run_script(shell: &[&str], script: &[u8]) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), script).unwrap();
    let out = Command::new(shell[0])
        .args(&shell[1..])
        .arg(file.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

/// The keys the Munki condition script writes on the simulated Mac, as the fake `defaults` logs them
/// (`defaults write DOMAIN KEY TYPE VALUE…`, one a line), run by `shell` as root the way
/// managedsoftwareupdate runs `/usr/local/munki/conditions`, into Munki's default ManagedInstallDir.
fn munki_conditions(shell: &[&str], mac: &Mac, script: &[u8], support: &str) -> String {
    let text = String::from_utf8(on_sim(mac, script, support)).unwrap();
    let managed = "/Library/Managed Installs";
    fs::create_dir_all(mac.on_mac(managed)).unwrap();
    let lines = [
        (
            "DEFAULTS=/usr/bin/defaults".to_owned(),
            format!("DEFAULTS='{}'", mac.sim.join("bin/defaults").display()),
        ),
        (
            format!("CONDITIONS='{managed}/ConditionalItems'"),
            format!("CONDITIONS='{}/ConditionalItems'", mac.on_mac(managed).display()),
        ),
    ];
    let text = lines.iter().fold(text, |text, (line, on_sim)| {
        assert_eq!(text.matches(line.as_str()).count(), 1, "{text}");
        text.replace(line.as_str(), on_sim)
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), text).unwrap();
    mac.clear_commands();
    let out = mac
        .root_env(Command::new(shell[0]).args(&shell[1..]).arg(file.path()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(output_text(&out), "", "a condition script prints nothing");
    mac.commands()
}

/// What the Munki condition writes for the example fleet (`halfday-agents`: a predicate's key has no `-`).
fn munki_writes(install_ok: &str, release: &str, failed_checks: &str) -> String {
    let domain = "defaults write '/Library/Managed Installs/ConditionalItems' confine_halfday_agents";
    format!(
        "{domain}_install_ok -bool {install_ok}\n{domain}_release -string {release}\n\
         {domain}_failed_checks -array{failed_checks}\n"
    )
}

#[test]
fn inventory_scripts_report_an_install_on_the_simulated_mac() {
    let fleet = sim::example();
    let support = fleet.support_dir.clone();
    let report = confine::export::inventory::report_script(&fleet).unwrap();
    let jamf = confine::export::inventory::jamf_scripts(&fleet).unwrap();
    let munki = confine::export::inventory::munki_condition(&fleet).unwrap();
    let all: Vec<&[u8]> = [report.as_slice(), munki.as_slice()]
        .into_iter()
        .chain(jamf.iter().map(|(_, s)| s.as_slice()))
        .collect();
    for script in &all {
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), script).unwrap();
        let out = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(file.path())
            .output()
            .expect("shellcheck");
        assert!(out.status.success(), "shellcheck:\n{}", output_text(&out));
    }
    let jamf_value = |shell: &[&str], mac: &Mac, suffix: &str| -> String {
        let (_, script) = jamf.iter().find(|(name, _)| name.ends_with(suffix)).unwrap();
        let (ok, out) = run_script(shell, &on_sim(mac, script, &support));
        assert!(ok, "{out}");
        out.strip_prefix("<result>")
            .and_then(|o| o.strip_suffix("</result>\n"))
            .unwrap_or_else(|| panic!("not a Jamf result: {out:?}"))
            .to_owned()
    };
    for shell in [DASH, BASH_POSIX] {
        let mac = Mac::new(shell);
        // Before any install.
        assert_eq!(jamf_value(shell, &mac, "install-result"), "not installed");
        assert_eq!(jamf_value(shell, &mac, "release"), "not installed");
        let (ok, out) = run_script(shell, &on_sim(&mac, &report, &support));
        assert!(!ok && out.starts_with("result: not installed\n"), "{out}");
        assert_eq!(
            munki_conditions(shell, &mac, &munki, &support),
            munki_writes("NO", "'not installed'", "")
        );

        mac.install(&fleet).expect("install");
        let status: Value =
            serde_json::from_slice(&fs::read(mac.on_mac(&format!("{support}/status.json"))).unwrap())
                .unwrap();
        let keys = fs::read_to_string(mac.on_mac(&format!("{support}/public-keys.txt"))).unwrap();
        assert_eq!(jamf_value(shell, &mac, "install-result"), "ok");
        assert_eq!(
            jamf_value(shell, &mac, "release"),
            status["release"].as_str().unwrap()
        );
        let agent = &status["agents"][0];
        let versions = format!(
            "{} {} (node {})",
            agent["agent"].as_str().unwrap(),
            agent["openclaw"].as_str().unwrap(),
            agent["node"].as_str().unwrap()
        );
        assert_eq!(jamf_value(shell, &mac, "openclaw"), versions);
        assert!(keys.starts_with("hexagent deploy_halfday ssh-ed25519 "), "{keys}");
        assert_eq!(jamf_value(shell, &mac, "deploy-keys"), keys.trim_end());
        let (ok, out) = run_script(shell, &on_sim(&mac, &report, &support));
        assert!(ok, "{out}");
        assert_eq!(
            out,
            format!(
                "result: ok\nrelease: 1.0.0\nopenclaw: {versions}\ndeploy key: {}\n",
                keys.trim_end()
            )
        );
        for munki_shell in [shell, sim::apple_sh()] {
            assert_eq!(
                munki_conditions(munki_shell, &mac, &munki, &support),
                munki_writes("YES", "1.0.0", "")
            );
        }

        // A failed install, as write_status records one: the result and the failed checks are reported.
        let path = mac.on_mac(&format!("{support}/status.json"));
        let text = fs::read_to_string(&path).unwrap();
        let first_check = status["checks"][0]["check"].as_str().unwrap();
        let passed = format!("{{\"agent\": \"hexagent\", \"check\": \"{first_check}\", \"ok\": true}}");
        assert_eq!(text.matches(&passed).count(), 1, "{text}");
        let failed = text
            .replacen("\"result\": \"ok\"", "\"result\": \"failed\"", 1)
            .replacen(&passed, &passed.replace("true", "false"), 1);
        fs::write(&path, failed).unwrap();
        assert_eq!(
            jamf_value(shell, &mac, "install-result"),
            format!("failed: hexagent/{first_check}")
        );
        let (ok, out) = run_script(shell, &on_sim(&mac, &report, &support));
        assert!(
            !ok && out.starts_with(&format!("result: failed: hexagent/{first_check}\n")),
            "{out}"
        );
        for munki_shell in [shell, sim::apple_sh()] {
            assert_eq!(
                munki_conditions(munki_shell, &mac, &munki, &support),
                munki_writes("NO", "1.0.0", &format!(" hexagent/{first_check}"))
            );
        }
        // Two failed checks: one array element each (Jamf: space-separated).
        let checks = status["checks"].as_array().unwrap();
        let last_check = checks[checks.len() - 1]["check"].as_str().unwrap();
        assert_ne!(first_check, last_check);
        let passed = format!("{{\"agent\": \"hexagent\", \"check\": \"{last_check}\", \"ok\": true}}");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(&passed).count(), 1, "{text}");
        fs::write(&path, text.replacen(&passed, &passed.replace("true", "false"), 1)).unwrap();
        assert_eq!(
            jamf_value(shell, &mac, "install-result"),
            format!("failed: hexagent/{first_check} hexagent/{last_check}")
        );
        assert_eq!(
            munki_conditions(shell, &mac, &munki, &support),
            munki_writes(
                "NO",
                "1.0.0",
                &format!(" hexagent/{first_check} hexagent/{last_check}")
            )
        );
    }
}

/// With a profile identity, InstallProfile carries the signed profile (Macs show it as verified); Fleet
/// still gets the unsigned one (an escaped signed profile would no longer verify, and Fleet signs itself).
#[test]
fn signed_profiles_go_to_apple_mdm_and_unsigned_ones_to_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let ids = util::identity_new(dir.path(), "export-test");
    let identity = confine::sign::Identity::from_pkcs12(&ids.join("profile-signing.p12"), "export-test")
        .expect("identity");
    let loaded = loaded(&spec_text());
    let dist = dir.path().join("dist");
    let options = BuildOptions {
        out: dist.clone(),
        profile_identity: Some(identity),
        ..BuildOptions::default()
    };
    confine::build::build(&loaded, &options).expect("build");
    let (mdm, fleet) = (dir.path().join("mdm"), dir.path().join("fleet"));
    export(&loaded, Target::AppleMdm, &dist, &mdm).expect("export");
    export(&loaded, Target::Fleet, &dist, &fleet).expect("export");
    let name = "com.halfday.agents.profile.firewall";
    let command = plist(&mdm.join(format!("commands/InstallProfile-{name}.plist")));
    let signed: String = fs::read(dist.join(format!("profiles/signed/{name}.mobileconfig")))
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(command["Command"]["Payload"], signed.as_str());
    let escaped =
        fs::read_to_string(fleet.join(format!("lib/macos/configuration-profiles/{name}.mobileconfig")))
            .unwrap();
    let unsigned = fs::read_to_string(dist.join(format!("profiles/{name}.mobileconfig"))).unwrap();
    assert_eq!(fleet_expand(&escaped), Ok(unsigned));
}
