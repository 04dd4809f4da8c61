//! `confine push` against stateful doubles of Jamf Pro and Kandji (tests/mdm-double/double.py), which
//! validate every request and response against the vendors' API descriptions in ../shared/mdm-api.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use serde_json::{Value, json};

use crate::util::{confine, example_spec, stderr, write};

const SECRET: &str = "s3cret-0f-the-api-client";
const TOKEN: &str = "kandji-token-5b0d7e2e-7b0e-4d1a";

/// A double running on 127.0.0.1; it exits when its stdin closes.
struct Double {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Double {
    fn start(vendor: &str) -> Double {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = if vendor == "jamf" { SECRET } else { TOKEN };
        let secret_file = write(dir.path(), "secret", secret);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mdm-double/double.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(vendor)
            .arg("--secret-file")
            .arg(&secret_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the MDM double (tests/run installs openapi-core)");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the double prints its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the double did not start: {line:?}"));
        Double {
            child,
            _stdin: stdin,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> Value {
        let mut response = ureq::get(format!("{}/_double/state", self.url()))
            .call()
            .expect("state");
        let text = response.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).expect("json")
    }

    fn control(&self, what: &str, body: &Value) {
        ureq::post(format!("{}/_double/{what}", self.url()))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("control");
    }

    fn faults(&self, faults: Value) {
        self.control("faults", &faults);
    }

    fn clear_log(&self) {
        self.control("clear-log", &json!({}));
    }

    /// Sends one authenticated Jamf request the way any client could; returns the status.
    fn jamf_call(&self, path: &str, content_type: &str, body: &str) -> u16 {
        let mut answer = ureq::post(format!("{}/api/v1/oauth/token", self.url()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!(
                "grant_type=client_credentials&client_id=jamf-client&client_secret={SECRET}"
            ))
            .expect("token");
        let token: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().expect("body")).expect("json");
        let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token"));
        ureq::post(format!("{}{path}", self.url()))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Authorization", &bearer)
            .header("Cookie", "APBALANCEID=x")
            .header("Content-Type", content_type)
            .send(body)
            .expect("request")
            .status()
            .as_u16()
    }

    /// Write calls since the log was last cleared.
    fn writes(&self) -> u64 {
        self.state()["writes"].as_u64().expect("writes")
    }

    /// Every request and response so far met the vendor description.
    fn assert_valid(&self) {
        let state = self.state();
        assert_eq!(state["violations"], json!([]), "violations the double found");
        let rejected: Vec<&Value> = state["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|r| r["addition"].as_str().is_some_and(|a| a.contains("rejected")))
            .collect();
        assert!(
            rejected.is_empty(),
            "requests the vendor description rejects: {rejected:?}"
        );
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet spec pushing to the doubles, and its build.
struct Fleet {
    dir: tempfile::TempDir,
    spec: PathBuf,
}

impl Fleet {
    fn new(jamf: Option<&Double>, kandji: Option<&Double>, release: &str) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = write(
            dir.path(),
            "fleet.yaml",
            &spec_text(jamf, kandji, release, "AI Agent Macs"),
        );
        let fleet = Fleet { dir, spec };
        fleet.build();
        fleet
    }

    fn dist(&self) -> PathBuf {
        self.dir.path().join("dist")
    }

    fn build(&self) {
        let out = confine()
            .arg("build")
            .arg(&self.spec)
            .arg("--out")
            .arg(self.dist())
            .output()
            .expect("build");
        assert!(out.status.success(), "build: {}", stderr(&out));
    }

    fn release(&self, jamf: Option<&Double>, kandji: Option<&Double>, release: &str) {
        std::fs::write(&self.spec, spec_text(jamf, kandji, release, "AI Agent Macs")).expect("spec");
        self.build();
    }

    /// Rebuilds with `from` replaced by `to` in the spec.
    fn change(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.spec).expect("spec");
        assert_eq!(text.matches(from).count(), 1, "{from} occurs once");
        std::fs::write(&self.spec, text.replacen(from, to, 1)).expect("spec");
        self.build();
    }

    fn push(&self, extra: &[&str]) -> Output {
        push_with_env(&self.spec, &self.dist(), extra, true)
    }
}

fn spec_text(jamf: Option<&Double>, kandji: Option<&Double>, release: &str, group: &str) -> String {
    let mut text = example_spec().replacen("release: 1.0.0", &format!("release: {release}"), 1);
    text.push_str("\nmdm:\n");
    if let Some(jamf) = jamf {
        text.push_str(&format!(
            "  jamf:\n    url: {}\n    category: AI Agents\n    computer_groups: [{group}]\n",
            jamf.url()
        ));
    }
    if let Some(kandji) = kandji {
        text.push_str(&format!(
            "  kandji:\n    url: {}\n    blueprints: [{group}]\n",
            kandji.url()
        ));
    }
    text
}

fn push_with_env(spec: &Path, dist: &Path, extra: &[&str], credentials: bool) -> Output {
    let mut cmd = confine();
    cmd.arg("push")
        .arg(spec)
        .arg("--dist")
        .arg(dist)
        .args(["--retry-delay", "0.01"])
        .args(extra)
        .env_remove("JAMF_CLIENT_ID")
        .env_remove("JAMF_CLIENT_SECRET")
        .env_remove("KANDJI_API_TOKEN");
    if credentials {
        cmd.env("JAMF_CLIENT_ID", "jamf-client")
            .env("JAMF_CLIENT_SECRET", SECRET)
            .env("KANDJI_API_TOKEN", TOKEN);
    }
    let out = cmd.output().expect("push runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains(SECRET) && !all.contains(TOKEN),
        "a credential appears in the output: {all}"
    );
    out
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "push failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn actions(report: &Value) -> Vec<(String, String)> {
    report["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .flat_map(|t| t["objects"].as_array().expect("objects").iter())
        .map(|o| {
            (
                o["kind"].as_str().expect("kind").to_owned(),
                o["action"].as_str().expect("action").to_owned(),
            )
        })
        .collect()
}

fn all_actions_are(report: &Value, action: &str) -> bool {
    actions(report).iter().all(|(_, a)| a == action)
}

#[test]
fn jamf_push_creates_then_converges() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");

    let plan = ok(&fleet.push(&["--dry-run", "--json"]));
    assert_eq!(plan["schema"], "confine/push/v1");
    assert_eq!(plan["dry_run"], true);
    assert!(all_actions_are(&plan, "create"), "{plan}");
    assert_eq!(jamf.writes(), 0, "a dry run makes no write call");
    // The documented, versioned shape of `confine push --json`.
    let shape = serde_json::to_string_pretty(&plan)
        .expect("json")
        .replace(&jamf.url(), "http://127.0.0.1:PORT");
    insta::assert_snapshot!("push_plan_jamf", shape);

    let first = ok(&fleet.push(&["--json"]));
    assert!(all_actions_are(&first, "create"), "{first}");
    let state = jamf.state();
    assert_eq!(state["packages"].as_object().expect("packages").len(), 1);
    assert_eq!(state["profiles"].as_object().expect("profiles").len(), 6);
    assert_eq!(state["policies"].as_object().expect("policies").len(), 1);
    let package = state["packages"]
        .as_object()
        .expect("one")
        .values()
        .next()
        .expect("package");
    assert_eq!(package["hashType"], "SHA3_512");
    assert_eq!(package["fileName"], "halfday-agents-1.0.0.pkg");
    let policy = state["policies"]
        .as_object()
        .expect("one")
        .values()
        .next()
        .expect("policy");
    assert_eq!(policy["general"]["frequency"], "Once per computer");
    assert_eq!(policy["general"]["trigger_checkin"], true);
    assert_eq!(policy["general"]["trigger_enrollment_complete"], true);
    assert_eq!(
        policy["package_configuration"]["packages"][0]["package"]["id"].to_string(),
        package["id"].as_str().expect("id")
    );
    for profile in state["profiles"].as_object().expect("profiles").values() {
        assert_eq!(profile["general"]["distribution_method"], "Install Automatically");
        assert_eq!(
            profile["scope"]["computer_groups"][0]["computer_group"]["name"],
            "AI Agent Macs"
        );
        assert_eq!(profile["general"]["category"]["name"], "AI Agents");
    }
    jamf.assert_valid();

    // The double stored every profile the way Jamf does (new PayloadUUIDs and PayloadIdentifier,
    // injected keys, re-indented): the same build still counts as unchanged, with no write call.
    let firewall_file = std::fs::read_to_string(
        fleet
            .dist()
            .join("profiles/com.halfday.agents.profile.firewall.mobileconfig"),
    )
    .expect("profile");
    let stored = state["profiles"]
        .as_object()
        .expect("profiles")
        .values()
        .map(|p| p["general"]["payloads"].as_str().expect("payloads"))
        .find(|p| p.contains("com.apple.security.firewall"))
        .expect("the firewall profile");
    assert_ne!(stored, firewall_file, "the double rewrote the profile");
    assert!(stored.contains("PayloadEnabled") && !stored.contains("com.halfday.agents.profile.firewall<"));
    jamf.clear_log();
    let second = ok(&fleet.push(&["--json"]));
    assert!(all_actions_are(&second, "unchanged"), "{second}");
    assert_eq!(jamf.writes(), 0);
    assert_eq!(second["targets"][0]["write_calls"], 0);

    // A new release updates the same records; the policy points at the new file.
    fleet.release(Some(&jamf), None, "1.1.0");
    let plan = ok(&fleet.push(&["--dry-run", "--json"]));
    assert!(
        actions(&plan).contains(&("package".into(), "update".into())),
        "{plan}"
    );
    assert_eq!(jamf.writes(), 0, "a dry run makes no write call");
    let third = ok(&fleet.push(&["--json"]));
    assert!(
        actions(&third).contains(&("package".into(), "update".into())),
        "{third}"
    );
    let after = jamf.state();
    assert_eq!(after["packages"].as_object().expect("packages").len(), 1);
    assert_eq!(after["profiles"].as_object().expect("profiles").len(), 6);
    assert_eq!(after["policies"].as_object().expect("policies").len(), 1);
    let updated = after["packages"]
        .as_object()
        .expect("one")
        .values()
        .next()
        .expect("package");
    assert_eq!(updated["id"], package["id"], "same record id");
    assert_eq!(updated["fileName"], "halfday-agents-1.1.0.pkg");
    assert_ne!(updated["hashValue"], package["hashValue"]);
    let policy_after = after["policies"].as_object().expect("one");
    assert_eq!(
        policy_after.keys().collect::<Vec<_>>(),
        state["policies"]
            .as_object()
            .expect("one")
            .keys()
            .collect::<Vec<_>>()
    );
    let package_ref =
        &policy_after.values().next().expect("policy")["package_configuration"]["packages"][0]["package"];
    assert_eq!(package_ref["name"], "halfday-agents-1.1.0.pkg");
    let policy_id = state["policies"]
        .as_object()
        .expect("one")
        .keys()
        .next()
        .expect("id")
        .clone();
    assert_eq!(
        after["flushes"][&policy_id], 1,
        "the policy's logs were flushed, so every Mac upgrades"
    );

    // A changed profile is updated in place, and only it.
    fleet.change("block_all_incoming: false", "block_all_incoming: true");
    jamf.clear_log();
    let fourth = ok(&fleet.push(&["--json"]));
    let changed: Vec<&Value> = fourth["targets"][0]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["action"] != "unchanged")
        .collect();
    assert_eq!(changed.len(), 1, "{fourth}");
    assert_eq!(changed[0]["identifier"], "com.halfday.agents.profile.firewall");
    assert_eq!(changed[0]["action"], "update");
    assert_eq!(jamf.writes(), 1, "one PUT");
    assert_eq!(len(&jamf.state()["profiles"]), 6);
    jamf.assert_valid();
}

#[test]
fn jamf_renews_a_token_that_expires_during_the_upload_and_retries_failures() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    jamf.faults(json!([
        // A server older than /api/v1/oauth/token: confine falls back to /api/oauth/token.
        {"path": "^/api/v1/oauth/token$", "status": 404, "body": "", "times": 1},
        // The token expires while the package is on its way: Jamf answers 401 at the end.
        {"path": "/upload$", "status": 401, "expire_tokens": true, "times": 1,
         "body": {"httpStatus": 401, "errors": [{"code": "INVALID_TOKEN", "description": "expired"}]}},
        // Then the upload fails the way users report: 500 with an empty body, 502, 504.
        {"path": "/upload$", "status": 500, "body": "", "times": 1},
        {"path": "/upload$", "status": 502, "body": "<html>Bad Gateway</html>", "content_type": "text/html", "times": 1},
        {"method": "GET", "path": "^/api/v1/computer-groups$", "status": 504, "body": "", "times": 1},
        {"method": "POST", "path": "^/api/v1/packages$", "status": 429, "body": "", "times": 1},
        {"method": "POST", "path": "^/JSSResource/policies/id/0$", "status": 503, "body": "", "times": 1},
    ]));
    let out = fleet.push(&["--json"]);
    let report = ok(&out);
    assert!(all_actions_are(&report, "create"), "{report}");
    let state = jamf.state();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for token in state["tokens"].as_array().expect("tokens") {
        assert!(
            !printed.contains(token.as_str().expect("token")),
            "a token was printed"
        );
    }
    for status in [401, 500, 502, 504, 429, 503] {
        assert!(
            statuses(&state).contains(&status),
            "the double answered {status} once"
        );
    }
    assert_eq!(state["packages"].as_object().expect("packages").len(), 1);
    assert_eq!(
        state["policies"].as_object().expect("policies").len(),
        1,
        "a retried create made no duplicate"
    );
    let tokens = state["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["status"] == 200 && r["path"].as_str().is_some_and(|p| p.ends_with("/oauth/token")))
        .count();
    assert_eq!(tokens, 2, "one token, renewed once after it expired");
    assert!(
        state["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .any(|r| r["path"] == "/api/oauth/token")
    );
    jamf.assert_valid();
}

/// A read that stalls past `--read-timeout` is abandoned and sent again.
#[test]
fn a_stalled_read_times_out_and_is_retried() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    jamf.faults(json!([
        {"method": "GET", "path": "^/api/v1/computer-groups$", "apply": true, "delay": 3, "times": 1},
    ]));
    ok(&fleet.push(&["--read-timeout", "1"]));
    let state = jamf.state();
    let reads = state["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["path"] == "/api/v1/computer-groups")
        .count();
    assert_eq!(reads, 2, "the stalled read was sent again");
    assert_eq!(len(&state["packages"]), 1);
    jamf.assert_valid();
}

/// The double fails request n of a clean push (after applying it, the worst case: the client cannot tell
/// whether it went through), for every n; a rerun then converges to the clean state, with no duplicate
/// and nothing left to do.
fn interrupted_pushes_converge(vendor: &str, counts: fn(&Value) -> Vec<usize>, expected: &[usize]) {
    let double = Double::start(vendor);
    let fleet = if vendor == "jamf" {
        Fleet::new(Some(&double), None, "1.0.0")
    } else {
        Fleet::new(None, Some(&double), "1.0.0")
    };
    ok(&fleet.push(&[]));
    assert_eq!(counts(&double.state()), expected);
    let steps = double.state()["requests"].as_array().expect("requests").len();
    assert!(steps > 15, "a clean push takes {steps} requests");
    for n in 1..=steps {
        double.control("reset", &json!({}));
        double.faults(json!([{"request": n, "status": 500, "body": "", "apply": true}]));
        let interrupted = fleet.push(&["--retries", "0"]);
        ok(&fleet.push(&["--retries", "0"]));
        assert_eq!(
            counts(&double.state()),
            expected,
            "step {n}: {}",
            stderr(&interrupted)
        );
        double.clear_log();
        let settled = ok(&fleet.push(&["--json"]));
        assert!(all_actions_are(&settled, "unchanged"), "step {n}: {settled}");
        assert_eq!(double.writes(), 0, "step {n}");
    }
    double.assert_valid();
}

fn len(value: &Value) -> usize {
    value.as_object().map_or(0, serde_json::Map::len)
}

#[test]
fn an_interrupted_jamf_push_converges_on_rerun() {
    interrupted_pushes_converge(
        "jamf",
        |s| vec![len(&s["packages"]), len(&s["profiles"]), len(&s["policies"])],
        &[1, 6, 1],
    );
}

#[test]
fn an_interrupted_kandji_push_converges_on_rerun() {
    interrupted_pushes_converge(
        "kandji",
        |s| {
            let items = s["blueprints"]
                .as_object()
                .expect("blueprints")
                .values()
                .map(|b| b["items"].as_array().expect("items").len())
                .sum();
            vec![len(&s["apps"]), len(&s["kprofiles"]), items]
        },
        &[1, 6, 7],
    );
}

fn statuses(state: &Value) -> Vec<u64> {
    state["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect()
}

#[test]
fn kandji_push_creates_then_converges() {
    let kandji = Double::start("kandji");
    let fleet = Fleet::new(None, Some(&kandji), "1.0.0");
    // Kandji is still processing the upload when the app is created: 503, retried with backoff.
    kandji.faults(json!([
        {"method": "POST", "path": "^/api/v1/library/custom-apps$", "status": 503, "times": 2,
         "body": {"detail": "The upload is still being processed."}},
        {"method": "POST", "path": "^/_s3/", "status": 500, "body": "", "content_type": "application/xml", "times": 1},
        {"method": "GET", "path": "^/api/v1/library/custom-profiles$", "status": 429, "body": "", "times": 1,
         "retry_after": 1},
    ]));
    let plan = ok(&kandji_push(&fleet, &["--dry-run", "--json"]));
    assert!(all_actions_are(&plan, "create"), "{plan}");
    assert_eq!(kandji.writes(), 0);
    let first = ok(&kandji_push(&fleet, &["--json"]));
    assert!(all_actions_are(&first, "create"), "{first}");
    let state = kandji.state();
    let answered = statuses(&state);
    assert_eq!(
        answered.iter().filter(|s| **s == 503).count(),
        2,
        "still being processed, twice"
    );
    assert!(answered.contains(&500) && answered.contains(&429));
    let requests = state["requests"].as_array().expect("requests");
    let limited = requests.iter().position(|r| r["status"] == 429).expect("429");
    let waited =
        requests[limited + 1]["at"].as_f64().expect("at") - requests[limited]["at"].as_f64().expect("at");
    assert!(waited >= 0.9, "Retry-After: 1 was honoured (waited {waited} s)");
    let apps = state["apps"].as_object().expect("apps");
    assert_eq!(apps.len(), 1);
    let app = apps.values().next().expect("app");
    assert_eq!(app["install_enforcement"], "install_once");
    assert_eq!(state["kprofiles"].as_object().expect("profiles").len(), 6);
    let blueprint = state["blueprints"]
        .as_object()
        .expect("blueprints")
        .values()
        .find(|b| b["name"] == "AI Agent Macs")
        .expect("blueprint");
    assert_eq!(blueprint["items"].as_array().expect("items").len(), 7);
    kandji.assert_valid();

    kandji.clear_log();
    let second = ok(&kandji_push(&fleet, &["--json"]));
    assert!(all_actions_are(&second, "unchanged"), "{second}");
    assert_eq!(kandji.writes(), 0);

    fleet.release(None, Some(&kandji), "1.1.0");
    let third = ok(&kandji_push(&fleet, &["--json"]));
    assert!(
        actions(&third).contains(&("custom-app".into(), "update".into())),
        "{third}"
    );
    let after = kandji.state();
    let apps_after = after["apps"].as_object().expect("apps");
    assert_eq!(
        apps_after.keys().collect::<Vec<_>>(),
        apps.keys().collect::<Vec<_>>(),
        "same app id"
    );
    assert_ne!(apps_after.values().next().expect("app")["sha256"], app["sha256"]);
    kandji.assert_valid();
}

fn kandji_push(fleet: &Fleet, extra: &[&str]) -> Output {
    fleet.push(&[&["--to", "kandji"], extra].concat())
}

#[test]
fn a_tampered_artifact_stops_the_push_before_any_write() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let profile = fleet
        .dist()
        .join("profiles/com.halfday.agents.profile.firewall.mobileconfig");
    let text = std::fs::read_to_string(&profile).expect("profile");
    std::fs::write(&profile, text.replace("<true/>", "<false/>")).expect("tamper");
    let out = fleet.push(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match the manifest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(jamf.state()["requests"], json!([]), "not a single request");
}

#[test]
fn missing_credentials_or_group_fail_clearly() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let out = push_with_env(&fleet.spec, &fleet.dist(), &[], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("$JAMF_CLIENT_ID is not set"),
        "{}",
        stderr(&out)
    );

    let spec = write(
        fleet.dir.path(),
        "other.yaml",
        &spec_text(Some(&jamf), None, "1.0.0", "Nonexistent Macs"),
    );
    let out = push_with_env(&spec, &fleet.dist(), &["--json"], true);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["ok"], false);
    let message = report["problems"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("no computer group `Nonexistent Macs`")
            && message.contains("`AI Agent Macs`, `All Managed Clients`"),
        "{message}"
    );
    assert_eq!(jamf.writes(), 0);
}

#[test]
fn wrong_credentials_fail_without_showing_them() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let out = confine()
        .arg("push")
        .arg(&fleet.spec)
        .arg("--dist")
        .arg(fleet.dist())
        .env("JAMF_CLIENT_ID", "jamf-client")
        .env("JAMF_CLIENT_SECRET", "wrong-secret-value")
        .output()
        .expect("push");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused the API client credentials"), "{err}");
    assert!(!err.contains("wrong-secret-value"), "{err}");
}

#[test]
fn spec_urls_must_be_https_except_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{}\nmdm:\n  jamf:\n    url: http://example.jamfcloud.com\n    computer_groups: [A]\n    client_secret_env: not-a-name\n",
        example_spec()
    );
    let spec = write(dir.path(), "fleet.yaml", &text);
    let out = confine().arg("validate").arg(&spec).output().expect("validate");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not https"), "{err}");
    assert!(
        err.contains("`not-a-name` is not an environment variable name"),
        "{err}"
    );
}

/// The doubles' validation is real: a request the vendor description forbids is refused and logged.
#[test]
fn the_doubles_refuse_what_the_vendor_descriptions_forbid() {
    let jamf = Double::start("jamf");
    // A package record without the required fields.
    let status = jamf.jamf_call("/api/v1/packages", "application/json", r#"{"packageName":"x"}"#);
    assert_eq!(status, 400);
    // A Classic profile whose level is not one Jamf's schema allows.
    let bad = "<os_x_configuration_profile><general><name>A</name><level>everyone</level></general></os_x_configuration_profile>";
    let status = jamf.jamf_call(
        "/JSSResource/osxconfigurationprofiles/id/0",
        "application/xml",
        bad,
    );
    assert_eq!(status, 400);
    let state = jamf.state();
    assert_eq!(state["packages"], json!({}));
    assert_eq!(state["profiles"], json!({}));
}

/// XML specials in names and payloads survive both the Classic XML and Jamf's extra decode of
/// `<payloads>` (PI-827): the double decodes the way Jamf does and refuses a payload that breaks.
#[test]
fn jamf_classic_escaping_survives_the_extra_decode() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    fleet.change("organization: Halfday ", "organization: \"Halfday & Sons <AI>\" ");
    ok(&fleet.push(&[]));
    let state = jamf.state();
    let profiles = state["profiles"].as_object().expect("profiles");
    assert_eq!(profiles.len(), 6);
    for profile in profiles.values() {
        let name = profile["general"]["name"].as_str().expect("name");
        assert!(name.starts_with("Halfday & Sons <AI>: "), "{name}");
        let payloads = profile["general"]["payloads"].as_str().expect("payloads");
        assert!(payloads.contains("Halfday &amp; Sons &lt;AI&gt;"), "{payloads}");
    }
    jamf.clear_log();
    let second = ok(&fleet.push(&["--json"]));
    assert!(all_actions_are(&second, "unchanged"), "{second}");
    assert_eq!(jamf.writes(), 0);
    jamf.assert_valid();
}

/// confine finds its package record past the first page of a busy tenant's package list.
#[test]
fn jamf_pages_through_a_busy_tenant() {
    let jamf = Double::start("jamf");
    jamf.control("reset", &json!({"foreign_packages": 230}));
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    ok(&fleet.push(&[]));
    jamf.clear_log();
    let second = ok(&fleet.push(&["--json"]));
    assert!(all_actions_are(&second, "unchanged"), "{second}");
    assert_eq!(jamf.writes(), 0);
    assert_eq!(len(&jamf.state()["packages"]), 231);
    jamf.assert_valid();
}

/// A profile someone else made under the name confine wants is refused, not taken over.
#[test]
fn jamf_objects_confine_did_not_push_are_left_alone() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let theirs = "<os_x_configuration_profile><general><name>Halfday: Firewall</name><description>made by hand</description><payloads>&lt;plist version=\"1.0\"&gt;&lt;dict/&gt;&lt;/plist&gt;</payloads></general></os_x_configuration_profile>";
    let status = jamf.jamf_call(
        "/JSSResource/osxconfigurationprofiles/id/0",
        "application/xml",
        theirs,
    );
    assert_eq!(status, 201);
    let out = fleet.push(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "already has a configuration profile named `Halfday: Firewall` that confine did not push"
        ),
        "{}",
        stderr(&out)
    );
    let profiles = jamf.state()["profiles"].clone();
    assert_eq!(len(&profiles), 1);
    assert_eq!(profiles["2"]["general"]["description"], "made by hand");
    jamf.assert_valid();
}
