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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confine"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    run_push(cmd, spec, dist, extra, credentials)
}

/// `confine push` under a 1 GiB address-space limit and a two-minute bound, as the hostile-file tests
/// run (`timeout` answers 124 when the bound is hit).
fn push_limited(fleet: &Fleet, extra: &[&str], credentials: bool) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "prlimit", "--as=1073741824", "--"])
        .arg(env!("CARGO_BIN_EXE_confine"));
    let out = run_push(cmd, &fleet.spec, &fleet.dist(), extra, credentials);
    assert_ne!(
        out.status.code(),
        Some(124),
        "the push did not end within the bound"
    );
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}: {text}",
        out.status
    );
    out
}

fn run_push(mut cmd: Command, spec: &Path, dist: &Path, extra: &[&str], credentials: bool) -> Output {
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

/// How many requests to `path` the double received.
fn requests_to(state: &Value, path: &str) -> usize {
    state["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["path"] == path)
        .count()
}

/// Asserts the push failed (exit 1) saying `needle` on stderr; returns stderr.
fn failed_with(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "{needle:?} missing from: {err}");
    err
}

/// Another push of the same build changes nothing: every object unchanged, no write call. Returns its
/// report.
fn settled(double: &Double, fleet: &Fleet, extra: &[&str]) -> Value {
    double.clear_log();
    let report = ok(&fleet.push(&[&["--json"], extra].concat()));
    assert!(all_actions_are(&report, "unchanged"), "{report}");
    assert_eq!(double.writes(), 0, "{report}");
    report
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
    // The inventory extension attributes: scripts that report each Mac's install, as exported.
    let plan = confine::plan::Plan::new(&confine::spec::load(Some(&fleet.spec)).expect("spec").spec);
    let scripts = confine::export::inventory::jamf_scripts(&plan).expect("scripts");
    let attributes = state["attributes"].as_object().expect("attributes");
    assert_eq!(attributes.len(), scripts.len());
    for (name, script) in &scripts {
        let stored = attributes
            .values()
            .find(|a| a["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no attribute {name}"));
        assert_eq!(stored["inputType"], "SCRIPT");
        assert_eq!(stored["scriptContents"], String::from_utf8_lossy(script).as_ref());
        assert!(
            stored["description"]
                .as_str()
                .unwrap()
                .starts_with("confine-id: com.halfday.agents.inventory.")
        );
    }
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
        // A changed profile reaches the Macs that already have it.
        assert_eq!(profile["general"]["redeploy_on_update"], "All");
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
    let second = settled(&jamf, &fleet, &[]);
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
    assert_eq!(package_ref["id"].to_string(), updated["id"].as_str().expect("id"));
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
    let reads = requests_to(&state, "/api/v1/computer-groups");
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
        settled(&double, &fleet, &[]);
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
        |s| {
            vec![
                len(&s["packages"]),
                len(&s["profiles"]),
                len(&s["policies"]),
                len(&s["attributes"]),
            ]
        },
        &[1, 6, 1, 4],
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
    // Kandji is still processing the upload when the app is created: 503, whatever its text, retried
    // with backoff.
    kandji.faults(json!([
        {"method": "POST", "path": "^/api/v1/library/custom-apps$", "status": 503, "times": 1,
         "body": {"detail": "The upload is still being processed."}},
        {"method": "POST", "path": "^/api/v1/library/custom-apps$", "status": 503, "times": 1,
         "body": {"detail": "Service temporarily unavailable, try again later."}},
        {"method": "POST", "path": "^/_s3/", "status": 500, "body": "", "content_type": "application/xml", "times": 1},
        {"method": "POST", "path": "^/_s3/", "status": 403, "content_type": "application/xml", "times": 1,
         "body": "<Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy expired.</Message></Error>"},
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
    let presigned = requests_to(&state, "/api/v1/library/custom-apps/upload");
    assert_eq!(
        presigned, 3,
        "each failed S3 upload (a 500, an expired form) was retried with a new presigned form"
    );
    let requests = state["requests"].as_array().expect("requests");
    let limited = requests.iter().position(|r| r["status"] == 429).expect("429");
    let waited =
        requests[limited + 1]["at"].as_f64().expect("at") - requests[limited]["at"].as_f64().expect("at");
    assert!(waited >= 0.9, "Retry-After: 1 was honoured (waited {waited} s)");
    let apps = state["apps"].as_object().expect("apps");
    assert_eq!(apps.len(), 1);
    let app = apps.values().next().expect("app");
    assert_eq!(app["install_enforcement"], "continuously_enforce");
    assert!(
        app["audit_script"]
            .as_str()
            .is_some_and(|s| s.contains("pkgutil --pkg-info 'com.halfday.agents'")),
        "{app}"
    );
    assert_eq!(state["kprofiles"].as_object().expect("profiles").len(), 6);
    let blueprint = state["blueprints"]
        .as_object()
        .expect("blueprints")
        .values()
        .find(|b| b["name"] == "AI Agent Macs")
        .expect("blueprint");
    assert_eq!(blueprint["items"].as_array().expect("items").len(), 7);
    kandji.assert_valid();

    settled(&kandji, &fleet, &["--to", "kandji"]);

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
    failed_with(&out, "does not match the manifest");
    assert_eq!(jamf.state()["requests"], json!([]), "not a single request");
}

#[test]
fn missing_credentials_or_group_fail_clearly() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let out = push_with_env(&fleet.spec, &fleet.dist(), &[], false);
    failed_with(&out, "$JAMF_CLIENT_ID is not set");

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

/// Jamf's PI-827, per payload type (the double models jamf-cli's wire-verified findings): quotes and
/// apostrophes, which the built plists write as `&quot;` and `&apos;`, reach verbatim-stored payloads
/// (PPPC's CodeRequirement) as characters, so Jamf stores what was built; a second push writes nothing.
#[test]
fn jamf_stores_pppc_code_requirements_as_built() {
    for mode in ["per-type", "decode-once"] {
        let jamf = Double::start("jamf");
        jamf.control("reset", &json!({"pi827": mode}));
        let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
        fleet.change("organization: Halfday ", "organization: \"Halfday 'Sons' > AI\" ");
        ok(&fleet.push(&[]));
        let state = jamf.state();
        let profiles = state["profiles"].as_object().expect("profiles");
        assert_eq!(profiles.len(), 6);
        let pppc = profiles
            .values()
            .map(|p| p["general"]["payloads"].as_str().expect("payloads"))
            .find(|p| p.contains("com.apple.TCC.configuration-profile-policy"))
            .expect("the PPPC profile");
        let stored = plist::Value::from_reader_xml(pppc.as_bytes()).expect("a plist");
        let text = format!("{stored:?}");
        assert!(
            text.contains(r#"identifier \"node\" and anchor apple"#),
            "{mode}: {text}"
        );
        assert!(
            !text.contains("&quot;") && !text.contains("&apos;"),
            "{mode}: {text}"
        );
        for profile in profiles.values() {
            let name = profile["general"]["name"].as_str().expect("name");
            assert!(name.starts_with("Halfday 'Sons' > AI: "), "{name}");
        }
        settled(&jamf, &fleet, &[]);
        jamf.assert_valid();
    }
}

/// `&` in a payload Jamf stores verbatim cannot arrive on Macs as built: refused before any write, with
/// the key named.
#[test]
fn jamf_refuses_an_ampersand_it_would_store_as_an_entity() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    fleet.change("organization: Halfday ", "organization: \"Halfday & Sons\" ");
    let needle = "PayloadOrganization` holds `&` or `<`, which Jamf Pro would store in this com.apple.security.firewall payload as an entity (Jamf's PI-827)";
    failed_with(&fleet.push(&[]), needle);
    assert_eq!(jamf.writes(), 0, "nothing was written");
    // A CI dry run without credentials sees it too.
    let out = push_with_env(&fleet.spec, &fleet.dist(), &["--dry-run"], false);
    failed_with(&out, needle);
}

/// confine finds its package record past the first page of a busy tenant's package list.
#[test]
fn jamf_pages_through_a_busy_tenant() {
    let jamf = Double::start("jamf");
    jamf.control("reset", &json!({"foreign_packages": 230}));
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    ok(&fleet.push(&[]));
    settled(&jamf, &fleet, &[]);
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
    failed_with(
        &out,
        "already has a configuration profile named `Halfday: Firewall` that confine did not push",
    );
    let profiles = jamf.state()["profiles"].clone();
    assert_eq!(len(&profiles), 1);
    assert_eq!(profiles["2"]["general"]["description"], "made by hand");
    jamf.assert_valid();
}

/// The SHA-256 of the build's installer package, from its manifest.
fn package_sha256(fleet: &Fleet) -> String {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fleet.dist().join("manifest.json")).expect("manifest"))
            .expect("json");
    manifest["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "pkg")
        .and_then(|a| a["sha256"].as_str())
        .expect("a package")
        .to_owned()
}

/// The double's enrolled Mac checks in; returns the release its receipt records.
fn check_in(double: &Double, versions: &Value) -> String {
    double.control(
        "checkin",
        &json!({"versions": versions, "package_id": "com.halfday.agents"}),
    );
    double.state()["receipts"]["com.halfday.agents"]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

/// A Mac that installed release N ends on N+1, also when the push of N+1 stopped right after the upload
/// (the flush is derived from what Jamf holds, not remembered by the interrupted run).
#[test]
fn jamf_a_new_release_reaches_an_installed_mac_even_after_an_interrupted_push() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    ok(&fleet.push(&[]));
    let mut versions = json!({ package_sha256(&fleet): "1.0.0" });
    assert_eq!(check_in(&jamf, &versions), "1.0.0");
    assert_eq!(check_in(&jamf, &versions), "1.0.0", "once per computer");

    fleet.release(Some(&jamf), None, "1.1.0");
    versions[package_sha256(&fleet)] = json!("1.1.0");
    // The push stops after the package is uploaded and confirmed: every policy read fails.
    jamf.faults(json!([
        {"method": "GET", "path": "^/JSSResource/policies/", "status": 500, "body": "", "times": 100},
    ]));
    let interrupted = fleet.push(&["--retries", "0"]);
    assert_eq!(interrupted.status.code(), Some(1));
    jamf.faults(json!([]));
    let package = jamf.state()["packages"]
        .as_object()
        .expect("packages")
        .values()
        .next()
        .expect("package")
        .clone();
    assert_eq!(
        package["fileName"], "halfday-agents-1.1.0.pkg",
        "the upload happened"
    );
    assert_eq!(
        check_in(&jamf, &versions),
        "1.0.0",
        "the policy log was not flushed yet"
    );

    ok(&fleet.push(&[]));
    assert_eq!(check_in(&jamf, &versions), "1.1.0");
    settled(&jamf, &fleet, &[]);
    jamf.assert_valid();
}

/// A Kandji Mac that installed release N ends on N+1 with audit-and-enforce (the default); with
/// `install-once` it keeps N, as Kandji documents. Kandji's identity rewrite of custom profiles makes no
/// duplicates on the way.
#[test]
fn kandji_a_new_release_reaches_an_installed_mac() {
    for (enforcement, ends_on) in [("", "1.1.0"), ("install-once", "1.0.0")] {
        let kandji = Double::start("kandji");
        let fleet = Fleet::new(None, Some(&kandji), "1.0.0");
        if !enforcement.is_empty() {
            let text = std::fs::read_to_string(&fleet.spec).expect("spec");
            let text = text.replace(
                "    blueprints: [AI Agent Macs]\n",
                &format!("    blueprints: [AI Agent Macs]\n    enforcement: {enforcement}\n"),
            );
            std::fs::write(&fleet.spec, text).expect("spec");
        }
        ok(&kandji_push(&fleet, &[]));
        let mut versions = json!({ package_sha256(&fleet): "1.0.0" });
        assert_eq!(check_in(&kandji, &versions), "1.0.0");

        let text = std::fs::read_to_string(&fleet.spec).expect("spec");
        std::fs::write(&fleet.spec, text.replacen("release: 1.0.0", "release: 1.1.0", 1)).expect("spec");
        fleet.build();
        versions[package_sha256(&fleet)] = json!("1.1.0");
        ok(&kandji_push(&fleet, &[]));
        assert_eq!(check_in(&kandji, &versions), ends_on, "{enforcement}");
        let installs = kandji.state()["installs"].clone();
        assert_eq!(check_in(&kandji, &versions), ends_on, "{enforcement}: settled");
        assert_eq!(
            kandji.state()["installs"],
            installs,
            "{enforcement}: the audit passes now"
        );
        let state = kandji.state();
        assert_eq!(len(&state["kprofiles"]), 6, "no duplicate custom profiles");
        settled(&kandji, &fleet, &["--to", "kandji"]);
        kandji.assert_valid();
    }
}

/// A CI job without secrets: `--dry-run` plans from the build, says it did not ask, and sends nothing.
#[test]
fn a_dry_run_without_credentials_plans_from_the_build() {
    let jamf = Double::start("jamf");
    let kandji = Double::start("kandji");
    let fleet = Fleet::new(Some(&jamf), Some(&kandji), "1.0.0");
    let out = push_with_env(&fleet.spec, &fleet.dist(), &["--dry-run", "--json"], false);
    let report = ok(&out);
    assert!(
        stderr(&out).contains("no credentials, so http://127.0.0.1:"),
        "{}",
        stderr(&out)
    );
    let kinds = |target: &Value| -> Vec<String> {
        target["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .map(|o| o["kind"].as_str().expect("kind").to_owned())
            .collect()
    };
    let jamf_plan = &report["targets"][0];
    assert_eq!(jamf_plan["asked"], false);
    assert_eq!(
        jamf_plan["scope"],
        json!(["computer group `AI Agent Macs`", "category `AI Agents`"])
    );
    let mut expected = vec!["package".to_owned()];
    expected.extend(std::iter::repeat_n("profile".to_owned(), 6));
    expected.push("policy".to_owned());
    expected.extend(std::iter::repeat_n("extension-attribute".to_owned(), 4));
    assert_eq!(kinds(jamf_plan), expected);
    let kandji_plan = &report["targets"][1];
    assert_eq!(kandji_plan["asked"], false);
    assert_eq!(kinds(kandji_plan).len(), 1 + 6 + 7);
    assert!(all_actions_are(&report, "push"), "{report}");
    assert_eq!(jamf.state()["requests"], json!([]));
    assert_eq!(kandji.state()["requests"], json!([]));
    // Without --dry-run, missing credentials are still an error.
    let out = push_with_env(&fleet.spec, &fleet.dist(), &[], false);
    assert_eq!(out.status.code(), Some(1));
}

/// A 403 names the privilege the API client's role lacks, as Jamf's schema names it.
#[test]
fn jamf_a_refusal_names_the_missing_privilege() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    jamf.faults(json!([
        {"method": "GET", "path": "^/api/v1/packages$", "status": 403, "times": 1,
         "body": {"httpStatus": 403, "errors": [{"code": "FORBIDDEN", "description": "Forbidden"}]}},
    ]));
    let out = fleet.push(&["--dry-run"]);
    failed_with(
        &out,
        "answered 403: FORBIDDEN Forbidden (the API client's role needs the privilege `Read Packages`)",
    );
}

/// A token answer with an absurd, negative or missing lifetime is used, never a panic.
#[test]
fn hostile_server_token_lifetimes() {
    for ttl in [json!(18446744073709551615u64), json!(-5), json!("missing")] {
        let jamf = Double::start("jamf");
        let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
        jamf.faults(json!([{ "token_ttl": ttl, "times": 0 }]));
        let out = push_limited(&fleet, &[], true);
        assert_eq!(out.status.code(), Some(0), "{ttl}: {}", stderr(&out));
    }
}

/// A list that never ends (a next page forever, a huge totalCount) stops with a clear error.
#[test]
fn hostile_server_endless_lists() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    jamf.faults(json!([
        {"method": "GET", "path": "^/api/v1/packages$", "status": 200, "times": 1000000,
         "body": {"totalCount": 9_000_000_000_000_000u64, "results": [{"id": "9", "packageName": "x",
                  "fileName": "x.pkg", "categoryId": "-1"}]}},
    ]));
    let out = push_limited(&fleet, &["--dry-run"], true);
    failed_with(&out, "/api/v1/packages does not end");

    let kandji = Double::start("kandji");
    let fleet = Fleet::new(None, Some(&kandji), "1.0.0");
    let next = format!("{}/api/v1/blueprints?page=2", kandji.url());
    kandji.faults(json!([
        {"method": "GET", "path": "^/api/v1/blueprints$", "status": 200, "times": 1000000,
         "body": {"count": 1, "next": next, "previous": null, "results": [{"id": "b", "name": "x"}]}},
    ]));
    let out = push_limited(&fleet, &["--dry-run"], true);
    failed_with(&out, "/api/v1/blueprints does not end");
}

/// A server that quotes a secret right where the message is cut: redacted first, so not even its
/// start is printed.
#[test]
fn hostile_server_echoing_a_secret_is_redacted_before_the_cut() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let description = format!("{}{SECRET}", "A".repeat(292));
    jamf.faults(json!([
        {"method": "GET", "path": "^/api/v1/computer-groups$", "status": 400, "times": 1,
         "body": {"httpStatus": 400, "errors": [{"code": "X", "description": description}]}},
    ]));
    let out = push_limited(&fleet, &[], true);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(text.contains("***"), "{text}");
    assert!(
        !text.contains(&SECRET[..6]),
        "the start of the secret was printed: {text}"
    );
}

/// Kandji's cookies and token go to Kandji only, never to the S3 upload host (another origin).
#[test]
fn hostile_server_cookies_and_credentials_stay_with_their_origin() {
    let kandji = Double::start("kandji");
    let fleet = Fleet::new(None, Some(&kandji), "1.0.0");
    ok(&push_limited(&fleet, &[], true));
    kandji.assert_valid();
}

/// A built profile nested without end, or a binary plist whose shared objects expand to 2^60 values:
/// `push --dry-run` reads it within `validate`'s limits, with or without credentials.
#[test]
fn hostile_profiles_stay_within_validates_limits() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let nested = format!(
        "<?xml version=\"1.0\"?><plist version=\"1.0\">{}{}</plist>",
        "<array>".repeat(200_000),
        "</array>".repeat(200_000)
    );
    for (name, bytes) in [
        ("nested", nested.into_bytes()),
        ("shared", shared_references_bplist(60)),
    ] {
        replace_profile(&fleet, &bytes);
        for credentials in [false, true] {
            let out = push_limited(&fleet, &["--dry-run"], credentials);
            let code = out.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{name}: {:?}: {}",
                out.status,
                stderr(&out)
            );
        }
    }
}

/// A binary plist of `levels` arrays, each holding the one below twice: 2^levels strings once expanded.
fn shared_references_bplist(levels: u8) -> Vec<u8> {
    let mut out = b"bplist00".to_vec();
    let mut offsets = vec![out.len() as u8];
    out.extend_from_slice(&[0x51, b'x']);
    for level in 1..=levels {
        offsets.push(out.len() as u8);
        out.extend_from_slice(&[0xA2, level - 1, level - 1]);
    }
    let table = out.len() as u64;
    out.extend_from_slice(&offsets);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 1]);
    out.extend_from_slice(&(u64::from(levels) + 1).to_be_bytes());
    out.extend_from_slice(&u64::from(levels).to_be_bytes());
    out.extend_from_slice(&table.to_be_bytes());
    out
}

/// Replaces the firewall profile of the build with `bytes`, and its manifest entry to match.
fn replace_profile(fleet: &Fleet, bytes: &[u8]) {
    let relative = "profiles/com.halfday.agents.profile.firewall.mobileconfig";
    std::fs::write(fleet.dist().join(relative), bytes).expect("profile");
    let path = fleet.dist().join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
    for entry in manifest["artifacts"].as_array_mut().expect("artifacts") {
        if entry["path"] == relative {
            let digest = openssl::sha::sha256(bytes);
            entry["sha256"] = json!(digest.iter().map(|b| format!("{b:02x}")).collect::<String>());
            entry["size"] = json!(bytes.len());
        }
    }
    std::fs::write(&path, serde_json::to_vec(&manifest).expect("json")).expect("manifest");
}

/// An extension attribute of the same name that confine did not create stops the push, untouched.
#[test]
fn jamf_an_extension_attribute_confine_did_not_create_is_left_alone() {
    let jamf = Double::start("jamf");
    let fleet = Fleet::new(Some(&jamf), None, "1.0.0");
    let theirs = json!({"name": "halfday-agents-release", "description": "the admin's own", "dataType": "STRING",
                        "inputType": "SCRIPT", "inventoryDisplayType": "GENERAL",
                        "scriptContents": "#!/bin/sh\necho '<result>x</result>'\n"});
    assert_eq!(
        jamf.jamf_call(
            "/api/v1/computer-extension-attributes",
            "application/json",
            &theirs.to_string()
        ),
        201
    );
    let out = fleet.push(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("extension attribute `halfday-agents-release` that confine did not create"),
        "{}",
        stderr(&out)
    );
    let stored = jamf.state()["attributes"]
        .as_object()
        .expect("attributes")
        .values()
        .find(|a| a["name"] == "halfday-agents-release")
        .cloned()
        .expect("theirs");
    assert_eq!(stored["description"], "the admin's own");
    jamf.assert_valid();
}
