//! Configuration profiles: built from specs, checked against Apple's own schema (an independent oracle, not
//! confine's catalog), parsed by independent plist readers, snapshotted, and the catalog's error reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use confine::plan::Plan;
use confine::profile::{self, BuiltProfile, Finding, Severity};
use confine::spec::{self, Spec};
use plist::Value;
use serde_json::Value as Json;

const APPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/apple-device-management");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The example fleet with its `hardening.profiles` block replaced by `profiles` and its minimum macOS
/// replaced.
fn spec_text(minimum: &str, profiles: &str) -> String {
    let text = spec::EXAMPLE.replace(
        "minimum_macos: \"14.0\"",
        &format!("minimum_macos: \"{minimum}\""),
    );
    let (base, _) = text
        .split_once("\n  # Configuration profiles")
        .expect("the example's profiles block starts with its comment");
    format!("{base}\n  profiles:\n{profiles}")
}

fn parse(text: &str) -> Result<Spec, spec::SpecError> {
    spec::parse_and_validate(text, Path::new("fleet.yaml"))
}

fn build(text: &str) -> Vec<BuiltProfile> {
    let spec = parse(text).unwrap_or_else(|e| panic!("spec is valid:\n{e}"));
    let plan = Plan::new(&spec);
    profile::build(&spec, &plan, &fixtures()).unwrap_or_else(|e| panic!("builds:\n{e:#}"))
}

pub(crate) fn example() -> Vec<BuiltProfile> {
    let loaded = spec::load(None).expect("example is valid");
    let plan = Plan::new(&loaded.spec);
    profile::build(&loaded.spec, &plan, &loaded.base_dir).expect("example builds")
}

/// Every option set, on the newest macOS the copied schema knows.
const EVERY_OPTION: &str = r#"    grouping: per_concern
    removal_disallowed: false
    consent_text: "These settings keep the agent account locked down."
    managed_login_items:
      team_identifier: HX7739G8FX
    firewall:
      stealth_mode: true
      block_all_incoming: true
    login_window:
      hide_agents: true
      disable_guest_account: true
      disable_console_access: true
      show_name_and_password: true
    pppc:
      deny: [SystemPolicyAllFiles, Accessibility, ScreenCapture, AppleEvents, SystemPolicyAppData]
      team_identifier: HX7739G8FX
      code_requirement: 'identifier "node" and anchor apple generic and certificate leaf[subject.OU] = HX7739G8FX'
    restrictions:
      settings:
        allowAirDrop: false
        allowLocalUserCreation: false
        enforcedSoftwareUpdateDelay: 30
    gatekeeper:
      allow_identified_developers: false
      disable_override: true
      enable_xprotect_malware_upload: false
    certificate:
      path: profile-ca.pem
    raw:
      - name: screensaver
        payload_type: com.apple.screensaver
        settings:
          askForPassword: true
          askForPasswordDelay: 0
          loginWindowIdleTime: 600
      - name: agent-privacy
        payload_type: com.apple.TCC.configuration-profile-policy
        settings:
          Services:
            ScreenCapture:
              - Identifier: /usr/local/bin/node
                IdentifierType: path
                CodeRequirement: 'identifier "node" and anchor apple generic'
                Authorization: Deny
"#;

fn every_option() -> Vec<BuiltProfile> {
    build(&spec_text("15.0", EVERY_OPTION))
}

pub(crate) fn plist_of(p: &BuiltProfile) -> plist::Dictionary {
    Value::from_reader_xml(p.xml.as_slice())
        .expect("XML plist")
        .into_dictionary()
        .expect("dictionary")
}

fn payload_types(p: &BuiltProfile) -> Vec<String> {
    plist_of(p)["PayloadContent"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            d.as_dictionary().expect("dict")["PayloadType"]
                .as_string()
                .expect("type")
                .to_owned()
        })
        .collect()
}

// Apple's schema as an oracle.

/// Apple YAML files serde-saphyr cannot load, with why. Listed, not skipped silently: the test fails if the
/// set changes either way.
const UNLOADABLE_APPLE_FILES: &[(&str, &str)] = &[(
    "com.apple.applicationaccess.new.yaml",
    "recursive YAML alias (lines 44/71, Parental Controls); serde_yaml fails the same way",
)];

/// Known gaps in Apple's schema (shared/reference/mobileconfig.md §3). A finding of the oracle is excused
/// only by a gap listed here, and each gap says why.
struct Gap {
    payload_type: &'static str,
    /// The finding's message must contain this.
    matches: &'static str,
    why: &'static str,
}

const KNOWN_GAPS: &[Gap] = &[
    Gap {
        payload_type: "com.apple.TCC.configuration-profile-policy",
        matches: "missing required `Allowed`",
        why: "Apple's text: each entry holds either `Allowed` or `Authorization` (macOS 11+), never both; the YAML marks `Allowed` required",
    },
    Gap {
        payload_type: "com.apple.loginwindow",
        matches: "unknown key `HiddenUsersList`",
        why: "HiddenUsersList is a com.apple.loginwindow managed preference the YAML lacks (confine sends it as a ManagedClient.preferences payload, so this gap is not hit by default)",
    },
    Gap {
        payload_type: "*",
        matches: "unknown key `PayloadEnabled`",
        why: "emitted by many tools, absent from Apple's schema (confine never emits it)",
    },
    Gap {
        payload_type: "Configuration",
        matches: "ConsentText: ",
        why: "the YAML models ConsentText as a nested `ConsentTextItem` dictionary; Apple's text (and macOS) take language code → string, `default` included",
    },
    Gap {
        payload_type: "com.apple.screensaver",
        matches: "missing required `moduleName`",
        why: "marked required, yet real profiles omit it and macOS keeps the current module",
    },
];

struct AppleSchema {
    top: Json,
    common: Json,
    /// Payload type → every file describing it (several files share `com.apple.MCX`).
    payloads: BTreeMap<String, Vec<Json>>,
    unloadable: BTreeMap<String, String>,
}

fn apple_schema() -> AppleSchema {
    let dir = Path::new(APPLE).join("mdm/profiles");
    let mut payloads: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    let mut unloadable = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (CI clones shared/ beside the repository)", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("read");
        match serde_saphyr::from_str::<Json>(&text) {
            Ok(doc) => {
                let t = doc["payload"]["payloadtype"]
                    .as_str()
                    .expect("payloadtype")
                    .to_owned();
                payloads.entry(t).or_default().push(doc);
            }
            Err(e) => {
                unloadable.insert(name, e.to_string());
            }
        }
    }
    let take = |payloads: &mut BTreeMap<String, Vec<Json>>, t: &str| payloads.remove(t).expect(t).remove(0);
    AppleSchema {
        top: take(&mut payloads, "TopLevel"),
        common: take(&mut payloads, "CommonPayloadKeys"),
        payloads,
        unloadable,
    }
}

/// Parses Apple's `introduced` field: a version, `all`, or `n/a`.
fn os_version(text: &str) -> Option<Vec<u32>> {
    match text {
        "all" => Some(vec![0]),
        _ => text.split('.').map(|p| p.parse().ok()).collect(),
    }
}

fn newer(a: &[u32], b: &[u32]) -> bool {
    let pad = |v: &[u32]| [0, 1, 2].map(|i| v.get(i).copied().unwrap_or(0));
    pad(a) > pad(b)
}

/// A small, independent validator of a profile against Apple's YAML: type, presence, rangelist, unknown
/// keys, macOS `introduced` (inherited per schema.md) against the fleet's minimum, and the device channel
/// against PayloadScope.
struct Oracle<'a> {
    apple: &'a AppleSchema,
    minimum: Vec<u32>,
    findings: Vec<(String, String)>,
}

impl Oracle<'_> {
    fn issue(&mut self, payload_type: &str, message: String) {
        self.findings.push((payload_type.to_owned(), message));
    }

    fn profile(&mut self, profile: &Value) {
        let top = profile.as_dictionary().expect("dict");
        let keys = self.apple.top["payloadkeys"].as_array().expect("keys").clone();
        let macos = self.apple.top["payload"]["supportedOS"]["macOS"].clone();
        self.dict("Configuration", top, &keys, &macos, "");
        let scope = top
            .get("PayloadScope")
            .and_then(Value::as_string)
            .unwrap_or("User");
        for (i, p) in top["PayloadContent"]
            .as_array()
            .expect("content")
            .iter()
            .enumerate()
        {
            self.payload(
                p.as_dictionary().expect("payload"),
                scope,
                &format!("PayloadContent[{i}]"),
            );
        }
    }

    fn payload(&mut self, p: &plist::Dictionary, scope: &str, path: &str) {
        let t = p["PayloadType"].as_string().expect("type").to_owned();
        let Some(docs) = self.apple.payloads.get(&t) else {
            self.issue(&t, format!("{path}: Apple's schema has no payload type `{t}`"));
            return;
        };
        let mut keys: Vec<Json> = self.apple.common["payloadkeys"]
            .as_array()
            .expect("common")
            .clone();
        for doc in docs {
            keys.extend(doc["payloadkeys"].as_array().expect("keys").iter().cloned());
        }
        let macos = docs[0]["payload"]["supportedOS"]["macOS"].clone();
        self.supported(&t, path, &macos);
        let channel = if scope == "System" {
            "devicechannel"
        } else {
            "userchannel"
        };
        if macos[channel] == Json::Bool(false) {
            self.issue(
                &t,
                format!("{path}: not deliverable on the {channel} (PayloadScope {scope})"),
            );
        }
        self.dict(&t, p, &keys, &macos, path);
    }

    fn supported(&mut self, t: &str, path: &str, macos: &Json) {
        match macos["introduced"].as_str().map(os_version) {
            Some(Some(v)) if newer(&v, &self.minimum) => {
                self.issue(
                    t,
                    format!("{path}: introduced in macOS {v:?}, after the fleet minimum"),
                );
            }
            Some(None) => self.issue(t, format!("{path}: not supported on macOS (n/a)")),
            _ => {}
        }
        if let Some(Some(removed)) = macos["removed"].as_str().map(os_version)
            && !newer(&removed, &self.minimum)
        {
            self.issue(t, format!("{path}: removed in macOS {removed:?}"));
        }
    }

    fn dict(&mut self, t: &str, d: &plist::Dictionary, keys: &[Json], macos: &Json, path: &str) {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_owned()
            } else {
                format!("{path}.{k}")
            }
        };
        for (name, value) in d {
            let def = keys
                .iter()
                .find(|k| k["key"] == name.as_str())
                .or_else(|| keys.iter().find(|k| k["key"] == "ANY"));
            match def {
                Some(def) => self.value(t, value, def, macos, &join(name)),
                None => self.issue(t, format!("{path}: unknown key `{name}`")),
            }
        }
        for def in keys {
            let name = def["key"].as_str().expect("key");
            if def["presence"] == "required" && name != "ANY" && !d.contains_key(name) {
                self.issue(t, format!("{path}: missing required `{name}`"));
            }
        }
    }

    fn value(&mut self, t: &str, value: &Value, def: &Json, inherited: &Json, path: &str) {
        let mut macos = inherited.clone();
        if let (Some(own), Some(m)) = (def["supportedOS"]["macOS"].as_object(), macos.as_object_mut()) {
            m.extend(own.clone());
        }
        self.supported(t, path, &macos);
        let ty = def["type"].as_str().expect("type");
        let ok = match ty {
            "<string>" => value.as_string().is_some(),
            "<integer>" => matches!(value, Value::Integer(_)),
            "<real>" => matches!(value, Value::Real(_)),
            "<boolean>" => value.as_boolean().is_some(),
            "<data>" => value.as_data().is_some(),
            "<date>" => value.as_date().is_some(),
            "<array>" => value.as_array().is_some(),
            "<dictionary>" => value.as_dictionary().is_some(),
            "<any>" => true,
            other => panic!("unexpected Apple type {other}"),
        };
        if !ok {
            self.issue(t, format!("{path}: expected {ty}"));
            return;
        }
        if let Some(list) = def["rangelist"].as_array() {
            let as_json = match value {
                Value::String(s) => Json::from(s.as_str()),
                Value::Integer(n) => Json::from(n.as_signed().expect("i64")),
                Value::Boolean(b) => Json::from(*b),
                _ => Json::Null,
            };
            if !list.contains(&as_json) {
                self.issue(t, format!("{path}: {as_json} is not in the rangelist"));
            }
        }
        let subkeys = def["subkeys"].as_array().cloned().unwrap_or_default();
        match value {
            Value::Dictionary(d) if !subkeys.is_empty() => self.dict(t, d, &subkeys, &macos, path),
            Value::Array(items) if !subkeys.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    self.value(t, item, &subkeys[0], &macos, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
}

/// Checks built profiles with the oracle; returns the gaps that excused a finding.
pub(crate) fn assert_apple_valid(profiles: &[BuiltProfile], minimum: &str) -> BTreeSet<&'static str> {
    let apple = apple_schema();
    let mut excused = BTreeSet::new();
    let mut unexcused = Vec::new();
    for p in profiles {
        let mut oracle = Oracle {
            apple: &apple,
            minimum: os_version(minimum).expect("version"),
            findings: Vec::new(),
        };
        oracle.profile(&Value::from_reader_xml(p.xml.as_slice()).expect("xml"));
        for (t, message) in oracle.findings {
            let gap = KNOWN_GAPS
                .iter()
                .find(|g| (g.payload_type == t || g.payload_type == "*") && message.contains(g.matches));
            match gap {
                Some(g) => {
                    excused.insert(g.why);
                }
                None => unexcused.push(format!("{}: [{t}] {message}", p.identifier)),
            }
        }
    }
    assert!(
        unexcused.is_empty(),
        "Apple's schema disagrees:\n{}",
        unexcused.join("\n")
    );
    excused
}

#[test]
fn apple_yaml_loads_except_the_listed_files() {
    let apple = apple_schema();
    let listed: BTreeSet<&str> = UNLOADABLE_APPLE_FILES.iter().map(|(f, _)| *f).collect();
    let failed: BTreeSet<&str> = apple.unloadable.keys().map(String::as_str).collect();
    assert_eq!(failed, listed, "errors: {:?}", apple.unloadable);
    assert!(
        apple.payloads.len() > 100,
        "anchors and aliases resolve in the other files"
    );
    let tcc = &apple.payloads["com.apple.TCC.configuration-profile-policy"][0];
    let calendar = &tcc["payloadkeys"][0]["subkeys"][1];
    assert_eq!(calendar["key"], "Calendar");
    assert_eq!(
        calendar["subkeys"][0]["subkeys"][0]["key"], "Identifier",
        "`*id001` expands"
    );
}

#[test]
fn example_fleet_emits_the_hardening_set() {
    let profiles = example();
    let by_id: BTreeMap<&str, Vec<String>> = profiles
        .iter()
        .map(|p| (p.identifier.as_str(), payload_types(p)))
        .collect();
    let expect = |id: &str, types: &[&str]| {
        assert_eq!(by_id[id], types, "{id}");
    };
    expect(
        "com.halfday.agents.profile.managed-login-items",
        &["com.apple.servicemanagement"],
    );
    expect(
        "com.halfday.agents.profile.firewall",
        &["com.apple.security.firewall"],
    );
    expect(
        "com.halfday.agents.profile.login-window",
        &[
            "com.apple.loginwindow",
            "com.apple.MCX",
            "com.apple.ManagedClient.preferences",
        ],
    );
    expect(
        "com.halfday.agents.profile.pppc",
        &["com.apple.TCC.configuration-profile-policy"],
    );
    expect(
        "com.halfday.agents.profile.restrictions",
        &["com.apple.applicationaccess"],
    );
    expect(
        "com.halfday.agents.profile.gatekeeper",
        &["com.apple.systempolicy.control", "com.apple.systempolicy.managed"],
    );
    assert_eq!(profiles.len(), 6);
    let excused = assert_apple_valid(&profiles, "14.0");
    assert!(excused.is_empty(), "the default build needs no gap: {excused:?}");
    for p in &profiles {
        assert!(p.warnings.is_empty(), "{}: {:?}", p.identifier, p.warnings);
        assert_eq!(p.file_name, format!("{}.mobileconfig", p.identifier));
        let top = plist_of(p);
        assert_eq!(top["PayloadScope"].as_string(), Some("System"));
        assert_eq!(top["PayloadOrganization"].as_string(), Some("Halfday"));
        assert_eq!(top["TargetDeviceType"].as_signed_integer(), Some(5));
    }
}

#[test]
fn example_fleet_rules_and_rules_targets() {
    let profiles = example();
    let pick = |id: &str| plist_of(profiles.iter().find(|p| p.identifier.ends_with(id)).expect(id));
    let sm = pick(".managed-login-items");
    let rule = &sm["PayloadContent"].as_array().expect("a")[0]
        .as_dictionary()
        .expect("d")["Rules"]
        .as_array()
        .expect("rules")[0];
    let rule = rule.as_dictionary().expect("rule");
    assert_eq!(rule["RuleType"].as_string(), Some("Label"));
    assert_eq!(
        rule["RuleValue"].as_string(),
        Some("com.halfday.agents.hexagent.gateway")
    );
    let tcc = pick(".pppc");
    let services = tcc["PayloadContent"].as_array().expect("a")[0]
        .as_dictionary()
        .expect("d")["Services"]
        .as_dictionary()
        .expect("s")
        .clone();
    for service in [
        "SystemPolicyAllFiles",
        "Accessibility",
        "ScreenCapture",
        "AppleEvents",
        "SystemPolicyAppData",
    ] {
        let entry = services[service].as_array().expect(service)[0]
            .as_dictionary()
            .expect("entry")
            .clone();
        assert_eq!(entry["Identifier"].as_string(), Some("/usr/local/bin/node"));
        assert_eq!(entry["IdentifierType"].as_string(), Some("path"));
        assert_eq!(entry["Allowed"].as_boolean(), Some(false));
        assert!(
            entry["CodeRequirement"]
                .as_string()
                .expect("req")
                .ends_with("certificate leaf[subject.OU] = HX7739G8FX")
        );
    }
}

#[test]
fn every_option_validates_against_apple_schema() {
    let profiles = every_option();
    let ids: Vec<&str> = profiles.iter().map(|p| p.identifier.as_str()).collect();
    assert!(ids.contains(&"com.halfday.agents.profile.certificate"), "{ids:?}");
    assert!(ids.contains(&"com.halfday.agents.profile.screensaver"), "{ids:?}");
    let excused = assert_apple_valid(&profiles, "15.0");
    let gaps: BTreeSet<&str> = KNOWN_GAPS.iter().map(|g| g.why).collect();
    assert!(excused.is_subset(&gaps));
    assert_eq!(
        excused.len(),
        3,
        "consent text, TCC Authorization, screensaver moduleName: {excused:?}"
    );
    let screensaver = profiles
        .iter()
        .find(|p| p.identifier.ends_with(".screensaver"))
        .expect("raw");
    assert_eq!(screensaver.warnings.len(), 1, "{:?}", screensaver.warnings);
    assert!(
        screensaver.warnings[0]
            .message
            .contains("does not know PayloadType `com.apple.screensaver`")
    );
    let pppc = profiles
        .iter()
        .find(|p| p.identifier.ends_with(".pppc"))
        .expect("pppc");
    assert!(
        pppc.notes.iter().any(|n| n.contains("user-approved MDM")),
        "{:?}",
        pppc.notes
    );
}

#[test]
fn single_grouping_validates_against_apple_schema() {
    let options = EVERY_OPTION.replace("grouping: per_concern", "grouping: single");
    let profiles = build(&spec_text("15.0", &options));
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].identifier, "com.halfday.agents.profile.hardening");
    assert_eq!(payload_types(&profiles[0]).len(), 12);
    assert_apple_valid(&profiles, "15.0");
}

#[test]
fn blocks_turn_off() {
    let off = "    managed_login_items: { enabled: false }\n    firewall: { enabled: false }\n    login_window: { enabled: false }\n    pppc: { enabled: false }\n    restrictions: { enabled: false }\n    gatekeeper: { enabled: false }\n";
    assert!(build(&spec_text("14.0", off)).is_empty());
}

#[test]
fn defaults_follow_the_fleet_minimum() {
    let profiles = build(&spec_text("13.0", "    grouping: per_concern\n"));
    assert_apple_valid(&profiles, "13.0");
    let all = String::from_utf8(profiles.iter().flat_map(|p| p.xml.clone()).collect()).expect("utf8");
    assert!(
        !all.contains("SystemPolicyAppData"),
        "a macOS 14 service stays out of a 13.0 fleet"
    );
    assert!(
        !all.contains("allowFileSharingModification"),
        "a macOS 14 restriction stays out"
    );
    assert!(all.contains("allowUIConfigurationProfileInstallation"));
}

// Independent parsers, snapshots, determinism.

#[test]
fn profiles_parse_with_independent_parsers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plistutil = Command::new("plistutil").arg("-h").output().is_ok();
    for p in example().iter().chain(every_option().iter()) {
        let path = dir.path().join(&p.file_name);
        std::fs::write(&path, &p.xml).expect("write");
        let python = Command::new("python3")
            .args(["-c", "import plistlib,sys; plistlib.load(open(sys.argv[1],'rb'))"])
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(
            python.status.success(),
            "{}: {}",
            p.file_name,
            String::from_utf8_lossy(&python.stderr)
        );
        if plistutil {
            let out = dir.path().join("out.plist");
            let status = Command::new("plistutil")
                .arg("-i")
                .arg(&path)
                .arg("-o")
                .arg(&out)
                .arg("-f")
                .arg("bin")
                .status()
                .expect("plistutil");
            assert!(status.success(), "plistutil rejects {}", p.file_name);
        }
        assert!(p.xml.ends_with(b"</plist>\n"));
    }
}

#[test]
fn snapshots_of_every_profile() {
    let example = example().into_iter().map(|p| (p.file_name.clone(), p));
    let every = every_option()
        .into_iter()
        .map(|p| (format!("every-option-{}", p.file_name), p));
    for (name, p) in example.chain(every) {
        insta::assert_snapshot!(name, String::from_utf8(p.xml).expect("utf8"));
    }
}

#[test]
fn builds_are_byte_identical() {
    assert_eq!(example(), example());
    assert_eq!(every_option(), every_option());
}

#[test]
fn built_profiles_pass_validate_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for p in example() {
        let path = dir.path().join(&p.file_name);
        std::fs::write(&path, &p.xml).expect("write");
        let findings = profile::validate_file(&path).expect("reads");
        assert!(findings.is_empty(), "{}: {findings:?}", p.file_name);
    }
}

// The catalog's verdicts on hand-written profiles.

fn firewall_profile(payload_extra: &str, top_extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>PayloadContent</key><array><dict>
    <key>PayloadIdentifier</key><string>com.example.fw.firewall</string>
    <key>PayloadType</key><string>com.apple.security.firewall</string>
    <key>PayloadUUID</key><string>0C4C5C0B-7D2A-4E8B-9C1D-2B3E4F5A6B7C</string>
    {payload_extra}
  </dict></array>
  <key>PayloadIdentifier</key><string>com.example.fw</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>1C4C5C0B-7D2A-4E8B-9C1D-2B3E4F5A6B7C</string>
  <key>PayloadVersion</key><integer>1</integer>
  {top_extra}
</dict></plist>"#
    )
}

const GOOD_PAYLOAD: &str = "<key>PayloadVersion</key><integer>1</integer><key>EnableFirewall</key><true/>";
const SYSTEM: &str = "<key>PayloadScope</key><string>System</string>";

fn findings(xml: &str, minimum: Option<&str>) -> Vec<Finding> {
    profile::validate_bytes(xml.as_bytes(), minimum).expect("a plist")
}

fn errors(xml: &str) -> Vec<String> {
    findings(xml, None)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn a_correct_profile_has_no_findings() {
    assert_eq!(
        findings(&firewall_profile(GOOD_PAYLOAD, SYSTEM), Some("14.0")),
        vec![]
    );
}

#[test]
fn integer_for_boolean_is_an_error() {
    let xml = firewall_profile(
        "<key>PayloadVersion</key><integer>1</integer><key>EnableFirewall</key><integer>1</integer>",
        SYSTEM,
    );
    assert_eq!(
        errors(&xml),
        ["error: PayloadContent[0].EnableFirewall: expected <boolean>, found <integer> 1"]
    );
}

#[test]
fn missing_payload_version_is_an_error() {
    let xml = firewall_profile("<key>EnableFirewall</key><true/>", SYSTEM);
    assert_eq!(
        errors(&xml),
        ["error: PayloadContent[0]: Firewall is missing the required key `PayloadVersion`"]
    );
}

#[test]
fn a_37_digit_uuid_is_an_error() {
    let xml = firewall_profile(GOOD_PAYLOAD, SYSTEM).replace(
        "0C4C5C0B-7D2A-4E8B-9C1D-2B3E4F5A6B7C",
        "F4B204F7-AA5C-4904-8F0F-E7149501F6023",
    );
    let e = errors(&xml);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("PayloadContent[0].PayloadUUID: `F4B204F7-AA5C-4904-8F0F-E7149501F6023` is not a UUID"),
        "{e:?}"
    );
}

#[test]
fn a_value_outside_the_allowed_list_is_an_error() {
    let xml = firewall_profile(GOOD_PAYLOAD, "<key>PayloadScope</key><string>Device</string>");
    let e = errors(&xml);
    assert!(e.iter().any(|m| m == "error: PayloadScope: <string> `Device` is not an allowed value of `PayloadScope`; allowed: `System`, `User`"), "{e:?}");
}

#[test]
fn an_unknown_key_is_an_error_and_payload_enabled_a_warning() {
    let xml = firewall_profile(
        &format!("{GOOD_PAYLOAD}<key>EnableFirewal</key><true/><key>PayloadEnabled</key><true/>"),
        SYSTEM,
    );
    let all = findings(&xml, None);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].severity, Severity::Error);
    assert_eq!(all[0].path, "PayloadContent[0].EnableFirewal");
    assert!(
        all[0]
            .message
            .starts_with("`EnableFirewal` is not a key of Firewall (see https://developer.apple.com/")
    );
    assert_eq!(all[1].severity, Severity::Warning);
    assert_eq!(all[1].path, "PayloadContent[0].PayloadEnabled");
}

#[test]
fn a_payload_newer_than_the_fleet_minimum_is_an_error() {
    let xml = firewall_profile(GOOD_PAYLOAD, SYSTEM)
        .replace("com.apple.security.firewall", "com.apple.servicemanagement")
        .replace("<key>EnableFirewall</key><true/>", "<key>Rules</key><array/>");
    let e: Vec<String> = findings(&xml, Some("12.0"))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        e,
        [
            "error: PayloadContent[0]: `com.apple.servicemanagement` needs macOS 13.0, but the fleet's minimum macOS is 12.0"
        ]
    );
    assert!(findings(&xml, Some("13.0")).is_empty());
}

#[test]
fn a_device_channel_payload_in_a_user_profile_is_an_error() {
    let xml = firewall_profile(GOOD_PAYLOAD, "<key>PayloadScope</key><string>User</string>");
    assert_eq!(
        errors(&xml),
        [
            "error: PayloadContent[0]: `com.apple.security.firewall` is only delivered on the device channel; the profile's PayloadScope must be System"
        ]
    );
}

#[test]
fn tcc_needs_exactly_one_of_allowed_and_authorization() {
    let entry = |extra: &str| {
        format!(
            "<key>PayloadVersion</key><integer>1</integer><key>Services</key><dict><key>Camera</key><array><dict><key>Identifier</key><string>/usr/local/bin/node</string><key>IdentifierType</key><string>path</string><key>CodeRequirement</key><string>identifier node</string>{extra}</dict></array></dict>"
        )
    };
    let tcc = |extra: &str| {
        firewall_profile(&entry(extra), SYSTEM).replace(
            "com.apple.security.firewall",
            "com.apple.TCC.configuration-profile-policy",
        )
    };
    assert_eq!(
        errors(&tcc("<key>Authorization</key><string>Deny</string>")),
        Vec::<String>::new()
    );
    assert_eq!(errors(&tcc("<key>Allowed</key><false/>")), Vec::<String>::new());
    let both = errors(&tcc(
        "<key>Allowed</key><false/><key>Authorization</key><string>Deny</string>",
    ));
    assert_eq!(
        both,
        [
            "error: PayloadContent[0].Services.Camera[0]: `Camera` needs exactly one of `Allowed`, `Authorization`; it has 2"
        ]
    );
}

#[test]
fn duplicate_payload_identifiers_are_an_error() {
    let xml = firewall_profile(GOOD_PAYLOAD, SYSTEM).replace("com.example.fw.firewall", "com.example.fw");
    assert_eq!(
        errors(&xml),
        [
            "error: PayloadContent[0].PayloadIdentifier: PayloadIdentifier `com.example.fw` is used twice in this profile"
        ]
    );
}

#[test]
fn binary_and_signed_profiles_are_read() {
    let xml = firewall_profile(GOOD_PAYLOAD, SYSTEM);
    let value = Value::from_reader_xml(xml.as_bytes()).expect("xml");
    let mut binary = Vec::new();
    value.to_writer_binary(&mut binary).expect("binary");
    assert!(profile::validate_bytes(&binary, None).expect("binary").is_empty());

    let signed = sign(xml.replace("<true/>", "<integer>1</integer>").as_bytes());
    let f = profile::validate_bytes(&signed, None).expect("signed");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].path, "PayloadContent[0].EnableFirewall");

    let mut tampered = signed.clone();
    let at = tampered
        .windows(8)
        .position(|w| w == b"Firewall")
        .expect("content is embedded");
    tampered[at] = b'f';
    let e = profile::validate_bytes(&tampered, None).expect_err("tampered");
    assert!(format!("{e:#}").contains("signature does not match"), "{e:#}");
}

/// A CMS SignedData with the content embedded, as `openssl cms -sign -nodetach -binary` makes it.
fn sign(content: &[u8]) -> Vec<u8> {
    use openssl::{
        asn1::Asn1Time,
        bn::BigNum,
        cms::{CMSOptions, CmsContentInfo},
        ec::{EcGroup, EcKey},
        hash::MessageDigest,
        nid::Nid,
        pkey::PKey,
        x509::{X509, X509NameBuilder},
    };
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, "profile signer")
        .expect("cn");
    let name = name.build();
    let mut cert = X509::builder().expect("builder");
    cert.set_version(2).expect("v3");
    cert.set_serial_number(
        &BigNum::from_u32(1)
            .expect("bn")
            .to_asn1_integer()
            .expect("serial"),
    )
    .expect("serial");
    cert.set_subject_name(&name).expect("subject");
    cert.set_issuer_name(&name).expect("issuer");
    cert.set_pubkey(&key).expect("pubkey");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("nb");
    cert.set_not_after(&Asn1Time::days_from_now(1).expect("later"))
        .expect("na");
    cert.sign(&key, MessageDigest::sha256()).expect("sign cert");
    let cert = cert.build();
    CmsContentInfo::sign(Some(&cert), Some(&key), None, Some(content), CMSOptions::BINARY)
        .expect("cms")
        .to_der()
        .expect("der")
}

// Spec-level errors point at the spec line.

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

/// The error `confine validate` gives a spec: its own checks first, then its profiles against the catalog.
fn spec_error(text: &str) -> String {
    let spec = match parse(text) {
        Err(e) => return e.to_string(),
        Ok(spec) => spec,
    };
    let loaded = spec::LoadedSpec {
        spec,
        origin: "fleet.yaml".into(),
        base_dir: fixtures(),
    };
    format!(
        "{:#}",
        confine::build::check(&loaded).expect_err("the spec is refused")
    )
}

#[test]
fn a_cdhash_only_requirement_needs_the_allow_flag() {
    let block = "    pppc:\n      code_requirement: 'cdhash H\"8a2c0e3b4e7d0c9f1b2a3c4d5e6f708192a3b4c5\"'\n";
    let text = spec_text("14.0", block);
    let e = spec_error(&text);
    let line = line_of(&text, "code_requirement:");
    assert!(e.starts_with(&format!("fleet.yaml:{line}:")), "{e}");
    assert!(
        e.contains("ad-hoc signed") && e.contains("allow_adhoc_node: true"),
        "{e}"
    );
    let allowed = spec_text("14.0", &format!("{block}      allow_adhoc_node: true\n"));
    assert!(!build(&allowed).is_empty());
}

#[test]
fn a_service_newer_than_the_fleet_minimum_names_both_versions_and_the_line() {
    let text = spec_text(
        "13.0",
        "    pppc:\n      deny:\n        - SystemPolicyAllFiles\n        - SystemPolicyAppData\n",
    );
    let e = spec_error(&text);
    let line = line_of(&text, "- SystemPolicyAppData");
    assert!(e.starts_with(&format!("fleet.yaml:{line}:")), "{e}");
    assert!(
        e.contains("needs macOS 14.0, but the fleet's minimum macOS is 13.0"),
        "{e}"
    );
}

#[test]
fn a_default_key_newer_than_the_minimum_points_at_minimum_macos() {
    let text = spec_text(
        "13.0",
        "    gatekeeper:\n      enable_xprotect_malware_upload: false\n",
    );
    let e = spec_error(&text);
    assert!(
        e.starts_with(&format!(
            "fleet.yaml:{}:",
            line_of(&text, "enable_xprotect_malware_upload")
        )),
        "{e}"
    );
    assert!(
        e.contains("`EnableXProtectMalwareUpload` needs macOS 15.0, but the fleet's minimum macOS is 13.0"),
        "{e}"
    );
}

#[test]
fn restriction_settings_are_checked_at_their_line() {
    let text = spec_text(
        "14.0",
        "    restrictions:\n      settings:\n        allowAirDrop: 0\n        allowAirDorp: false\n",
    );
    let e = spec_error(&text);
    assert!(
        e.contains(&format!("fleet.yaml:{}:", line_of(&text, "allowAirDrop: 0"))),
        "{e}"
    );
    assert!(e.contains("expected <boolean>, found <integer> 0"), "{e}");
    assert!(
        e.contains(&format!("fleet.yaml:{}:", line_of(&text, "allowAirDorp"))),
        "{e}"
    );
    assert!(e.contains("`allowAirDorp` is not a key of Restrictions"), "{e}");
}

#[test]
fn raw_payloads_convert_yaml_types() {
    let block = "    raw:\n      - name: prefs\n        payload_type: com.example.agent\n        settings:\n          Flag: true\n          Count: 3\n          Ratio: 0.5\n          Name: agent\n          Blob: { $data: aGVsbG8= }\n          When: { $date: 2026-01-31T00:00:00Z }\n          List: [a, 1]\n          Nested: { Inner: false }\n";
    let profiles = build(&spec_text("14.0", block));
    let raw = profiles
        .iter()
        .find(|p| p.identifier.ends_with(".prefs"))
        .expect("raw");
    let payload = plist_of(raw)["PayloadContent"].as_array().expect("a")[0]
        .as_dictionary()
        .expect("d")
        .clone();
    assert_eq!(payload["Flag"], Value::Boolean(true));
    assert_eq!(payload["Count"], Value::Integer(3.into()));
    assert_eq!(payload["Ratio"], Value::Real(0.5));
    assert_eq!(payload["Name"], Value::String("agent".into()));
    assert_eq!(payload["Blob"], Value::Data(b"hello".to_vec()));
    assert!(payload["When"].as_date().is_some());
    assert_eq!(
        payload["List"],
        Value::Array(vec!["a".into(), Value::Integer(1.into())])
    );
    assert_eq!(raw.warnings.len(), 1, "unknown PayloadType is a warning");
    assert_eq!(raw.warnings[0].severity, Severity::Warning);
}

#[test]
fn raw_payloads_may_not_set_confine_keys_or_take_block_names() {
    let text = spec_text(
        "14.0",
        "    raw:\n      - name: firewall\n        payload_type: com.apple.security.firewall\n        settings:\n          PayloadUUID: x\n          EnableFirewall: true\n",
    );
    let e = spec_error(&text);
    assert!(e.contains("raw payload name `firewall` is already taken"), "{e}");
    assert!(
        e.contains(&format!("fleet.yaml:{}:", line_of(&text, "PayloadUUID")))
            && e.contains("is set by confine"),
        "{e}"
    );
}

#[test]
fn a_missing_certificate_file_names_the_line() {
    let text = spec_text("14.0", "    certificate:\n      path: no-such-ca.pem\n");
    let spec = parse(&text).expect("shape is fine");
    let plan = Plan::new(&spec);
    let e = format!(
        "{:#}",
        profile::build(&spec, &plan, &fixtures()).expect_err("missing file")
    );
    assert!(
        e.contains(&format!(":{}:", line_of(&text, "no-such-ca.pem")))
            && e.contains("cannot read certificate"),
        "{e}"
    );
}

#[test]
fn the_spec_schema_documents_the_profile_blocks() {
    let schema = spec::json_schema();
    for needle in ["allow_adhoc_node", "HiddenUsersList", "per_concern", "$data"] {
        assert!(schema.contains(needle), "{needle}");
    }
}
