//! Egress filtering (issue 15): the fleet's pf anchor (snapshot, and a pf.conf grammar check built from
//! pf.conf(5), since there is no pfctl on Linux), and its root watchdog on the simulated Mac, whose fake
//! `pfctl` models pf's state (enabled flag, reference tokens, anchors, tables) and whose fake `nc` decides a
//! connection by the loaded rules. The agent, as its real UID, tries to stop or confuse the watchdog.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::sim::*;

const ANCHOR: &str = "com.apple/000.confine.halfday-agents";
const ANCHOR_DIR: &str = "com.apple%000.confine.halfday-agents";
const SUPPORT: &str = "/Library/Application Support/confine/halfday-agents";

/// The example plus a second agent with an IPv6 block, UDP, a single port and an empty allowlist.
fn wide_fleet() -> Fleet {
    plan_from(
        r#"
version: 1
fleet: { name: wide, organization: Wide, identifier: com.example.wide, release: 1.0.0 }
agents:
  - name: hexagent
    full_name: Hex Agent
    uid: 1051
    openclaw: { version: 2026.9.6 }
    egress:
      allow:
        - { to: github.com, ports: [22, 443] }
        - { to: 2001:db8::/32, ports: [443] }
        - { to: 192.0.2.53, ports: [123], protocol: udp }
        - { to: 198.51.100.7, ports: [8443] }
  - name: docbot
    full_name: Doc Bot
    uid: 1061
    openclaw: { version: 2026.9.6 }
    gateway: { port: 18790 }
    egress: { allow: [] }
  - name: free
    full_name: Unfiltered
    uid: 1071
    openclaw: { version: 2026.9.6 }
    gateway: { port: 18791 }
"#,
    )
}

fn anchor_text(fleet: &Fleet) -> String {
    let bytes = confine::egress::anchor(fleet)
        .expect("renders")
        .expect("egress is on");
    String::from_utf8(bytes).expect("utf-8")
}

#[test]
fn anchor_snapshot() {
    insta::assert_snapshot!("example_anchor", anchor_text(&example()));
    insta::assert_snapshot!("wide_anchor", anchor_text(&wide_fleet()));
    assert!(
        confine::egress::anchor(&plan_from(&example_without_egress()))
            .unwrap()
            .is_none()
    );
}

fn example_without_egress() -> String {
    let text = confine::spec::EXAMPLE;
    let start = text.find("    # Outbound allowlist").expect("egress block");
    let end = text[start..].find("\nhardening:").expect("after it") + start;
    format!("{}\n{}", &text[..start], &text[end..])
}

// ---- A pf.conf grammar checker, from pf.conf(5) (the subset an anchor of tables and filter rules uses).
//
//   table      = "table" "<" name ">" { "persist" | "const" | "counters" } [ "{" address-list "}" ]
//   pf-rule    = action [ "in" | "out" ] [ "log" ] [ "quick" ] [ "on" ifspec ] [ af ] [ "proto" list ]
//                hosts { filteropt }
//   action     = "pass" | "block" [ "drop" | "return" | "return-rst" | "return-icmp" ]
//   hosts      = "all" | "from" host [ port ] "to" host [ port ]
//   host       = "any" | address [ "/" bits ] | "<" table ">" | "{" host-list "}"
//   port       = "port" ( [ op ] number | "{" number-list "}" )
//   filteropt  = "user" ( [ op ] id | "{" id-list "}" ) | "group" ... | ( "keep" | "modulate" | "synproxy" ) "state" | "no" "state"
// Checked beyond the syntax, as pf.conf(5) says: table names fit PF_TABLE_NAME_SIZE (32 with the NUL);
// a table a rule names is defined; "user"/"group" only with tcp or udp ("Only TCP and UDP packets can be
// associated with users"); ports are 1-65535; addresses parse.

fn tokens(line: &str) -> Vec<String> {
    let line = line.split('#').next().unwrap_or("");
    let spaced = line
        .replace('{', " { ")
        .replace('}', " } ")
        .replace(',', " ")
        .replace('<', " <")
        .replace('>', "> ");
    spaced.split_whitespace().map(str::to_owned).collect()
}

struct Parser {
    t: Vec<String>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn next(&mut self) -> Result<String, String> {
        let t = self.t.get(self.i).cloned().ok_or("unexpected end of rule")?;
        self.i += 1;
        Ok(t)
    }
    fn eat(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, word: &str) -> Result<(), String> {
        let t = self.next()?;
        if t == word {
            Ok(())
        } else {
            Err(format!("expected `{word}`, found `{t}`"))
        }
    }
    /// `{ a b }` or one item, each checked by `item`.
    fn list(&mut self, item: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<(), String> {
        if self.eat("{") {
            let mut n = 0;
            while !self.eat("}") {
                item(&self.next()?)?;
                n += 1;
            }
            if n == 0 { Err("empty list".into()) } else { Ok(()) }
        } else {
            item(&self.next()?)
        }
    }
}

fn table_name(t: &str) -> Result<String, String> {
    let name = t
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or(format!("`{t}` is not <table>"))?;
    if name.is_empty() || name.len() > 31 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad table name `{name}`"));
    }
    Ok(name.to_owned())
}

fn address(t: &str) -> Result<(), String> {
    let (ip, bits) = t.split_once('/').map_or((t, None), |(a, b)| (a, Some(b)));
    let ip: IpAddr = ip.parse().map_err(|_| format!("`{t}` is not an address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits.map(str::parse::<u32>) {
        None => Ok(()),
        Some(Ok(b)) if b <= max => Ok(()),
        _ => Err(format!("bad prefix in `{t}`")),
    }
}

fn number(t: &str, range: std::ops::RangeInclusive<u32>, what: &str) -> Result<(), String> {
    match t.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(()),
        _ => Err(format!("`{t}` is not a {what}")),
    }
}

/// Checks a whole anchor: every line a table or a filter rule, every rule's tables defined.
fn check_pf_conf(text: &str) -> Result<(), String> {
    let mut tables = BTreeSet::new();
    let mut used = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = tokens(line);
        if t.is_empty() {
            continue;
        }
        let mut p = Parser { t, i: 0 };
        let result = match p.peek() {
            Some("table") => table_statement(&mut p, &mut tables),
            Some("pass" | "block") => rule(&mut p, &mut used),
            Some(other) => Err(format!("`{other}` starts no statement this anchor may hold")),
            None => Ok(()),
        }
        .and_then(|()| match p.peek() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected `{extra}`")),
        });
        result.map_err(|e| format!("line {}: {e}: {line}", n + 1))?;
    }
    for name in used {
        if !tables.contains(&name) {
            return Err(format!("table <{name}> is used but not defined"));
        }
    }
    Ok(())
}

fn table_statement(p: &mut Parser, tables: &mut BTreeSet<String>) -> Result<(), String> {
    p.expect("table")?;
    let name = table_name(&p.next()?)?;
    if !tables.insert(name.clone()) {
        return Err(format!("table <{name}> defined twice"));
    }
    while p.eat("persist") || p.eat("const") || p.eat("counters") {}
    if p.peek() == Some("{") {
        p.list(&mut |a| address(a))?;
    }
    Ok(())
}

fn rule(p: &mut Parser, used: &mut Vec<String>) -> Result<(), String> {
    if p.next()? == "block" {
        let _ = p.eat("drop") || p.eat("return") || p.eat("return-rst") || p.eat("return-icmp");
    }
    let _ = p.eat("in") || p.eat("out");
    p.eat("log");
    p.eat("quick");
    if p.eat("on") {
        p.list(&mut |i| {
            if i.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok(())
            } else {
                Err(format!("bad interface `{i}`"))
            }
        })?;
    }
    let _ = p.eat("inet") || p.eat("inet6");
    let mut protos = Vec::new();
    if p.eat("proto") {
        p.list(&mut |x| {
            protos.push(x.to_owned());
            if ["tcp", "udp", "icmp", "icmp6"].contains(&x) {
                Ok(())
            } else {
                Err(format!("unknown protocol `{x}`"))
            }
        })?;
    }
    if !p.eat("all") {
        for side in ["from", "to"] {
            p.expect(side)?;
            p.list(&mut |h| match h {
                "any" => Ok(()),
                _ if h.starts_with('<') => table_name(h).map(|n| used.push(n)),
                _ => address(h),
            })?;
            if p.eat("port") {
                if matches!(p.peek(), Some("=" | "!=" | "<" | ">" | "<=" | ">=")) {
                    p.next()?;
                }
                p.list(&mut |n| number(n, 1..=65535, "port"))?;
            }
        }
    }
    while let Some(option) = p.peek().map(str::to_owned) {
        p.next()?;
        match option.as_str() {
            "user" | "group" => {
                if protos.is_empty() || protos.iter().any(|x| x != "tcp" && x != "udp") {
                    return Err(format!("`{option}` needs proto tcp or udp (pf.conf(5))"));
                }
                if matches!(p.peek(), Some("=" | "!=")) {
                    p.next()?;
                }
                p.list(&mut |id| number(id, 0..=u32::MAX, "user id"))?;
            }
            "keep" | "modulate" | "synproxy" | "no" => p.expect("state")?,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(())
}

#[test]
fn anchor_passes_the_pf_conf_grammar() {
    for fleet in [example(), wide_fleet()] {
        let text = anchor_text(&fleet);
        check_pf_conf(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // Policy: for each filtered UID, every rule is `quick`, and its block comes last.
        for agent in fleet.agents.iter().filter(|a| a.egress.is_some()) {
            let user = format!("user {}", agent.uid);
            let rules: Vec<&str> = text
                .lines()
                .filter(|l| l.ends_with(&user) || l.contains(&format!("{user} ")))
                .collect();
            assert!(rules.iter().all(|r| r.contains(" quick ")), "{rules:?}");
            assert_eq!(
                rules.last().copied(),
                Some(format!("block return out quick proto {{ tcp udp }} from any to any {user}").as_str())
            );
            assert!(rules[0].starts_with("pass out quick on lo0 "), "{rules:?}");
        }
        assert!(
            !text.contains("user 1071"),
            "an agent without egress is not filtered"
        );
    }
}

#[test]
fn the_grammar_checker_rejects_what_pfctl_would() {
    for bad in [
        "pass out quick from any to any user 1051",
        "pass out quick proto icmp all user 1051",
        "pass out quick proto tcp from any to <nowhere> port 443",
        "table <a> persist { 10.0.0.300 }",
        "table <this_table_name_is_far_too_long_for_pf> persist",
        "pass out quick proto tcp from any to 10.0.0.0/8 port 70000",
        "pass out quikc proto tcp all",
        "block return out quick proto { tcp udp } from any to any user 1051 keep",
        "nat on en0 from any to any -> 10.0.0.1",
        "pass out quick proto tcp from any to any port { }",
    ] {
        assert!(check_pf_conf(bad).is_err(), "accepted: {bad}");
    }
}

// ---- The watchdog on the simulated Mac.

fn pf(mac: &Mac) -> std::path::PathBuf {
    mac.state.join("pf")
}

fn installed(shell: &'static [&'static str]) -> Mac {
    let mac = Mac::new(shell);
    mac.install(&example())
        .unwrap_or_else(|e| panic!("install:\n{e}"));
    mac
}

/// Runs the installed watchdog as root, as launchd would (with the simulation's PATH and volume).
fn watchdog(mac: &Mac) -> Output {
    watchdog_command(mac).output().expect("watchdog")
}

fn watchdog_command(mac: &Mac) -> Command {
    let mut command = Command::new(mac.shell[0]);
    command
        .args(&mac.shell[1..])
        .arg(mac.on_mac(&format!("{SUPPORT}/egress-watchdog")))
        .arg(&mac.target)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CONFINE_SIM_BIN", mac.sim.join("bin"))
        .env("SIM_LIB", mac.sim.join("simlib.sh"))
        .env("SIM_STATE", &mac.state);
    command
}

/// `script` run by sh as hexagent's real UID, with the simulated Mac's tools on PATH.
fn as_agent(mac: &Mac, script: &str) -> Output {
    hexagent_sh("-c", script)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", mac.sim.join("bin").display()))
        .env("SIM_LIB", mac.sim.join("simlib.sh"))
        .env("SIM_STATE", &mac.state)
        .env("SUPPORT", mac.on_mac(SUPPORT))
        .output()
        .expect("setpriv")
}

fn table(mac: &Mac, name: &str) -> Vec<String> {
    fs::read_to_string(pf(mac).join("anchors").join(ANCHOR_DIR).join("tables").join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn tokens_held(mac: &Mac) -> BTreeSet<String> {
    fs::read_dir(pf(mac).join("tokens"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn our_token(mac: &Mac) -> String {
    fs::read_to_string(mac.on_mac(&format!("{SUPPORT}/egress-state/pf-token")))
        .expect("token file")
        .trim()
        .to_owned()
}

/// The agent's connection as the fake nc decides it from pf's loaded state: "ok" or nc's error.
fn agent_connect(mac: &Mac, host: &str, port: u16) -> String {
    let out = as_agent(mac, &format!("nc -z -G 5 -w 5 {host} {port}"));
    if out.status.success() {
        "ok".into()
    } else {
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    }
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}:\n{}", output_text(out));
}

#[test]
fn install_loads_the_anchor_fills_tables_and_records_the_self_check() {
    let mac = installed(apple_sh());
    assert!(pf(&mac).join("enabled").exists());
    assert_eq!(tokens_held(&mac), BTreeSet::from([our_token(&mac)]));
    let loaded = fs::read_to_string(pf(&mac).join("anchors").join(ANCHOR_DIR).join("rules")).expect("rules");
    assert!(
        loaded.contains("block return out quick proto udp all user = 1051"),
        "{loaded}"
    );
    assert_eq!(table(&mac, "confine_dns"), ["192.168.1.1"]);
    assert_eq!(table(&mac, "confine_1051_1"), ["192.0.2.10"]);
    assert_eq!(table(&mac, "confine_1051_3"), ["198.51.100.20", "2001:db8::20"]);
    assert_eq!(
        table(&mac, "confine_1051_4"),
        ["140.82.112.0/20"],
        "literal blocks come from the anchor"
    );

    // What the agent meets: its allowlist and loopback pass, everything else is refused at once.
    assert_eq!(agent_connect(&mac, "github.com", 22), "ok");
    assert_eq!(agent_connect(&mac, "140.82.114.4", 443), "ok");
    assert_eq!(agent_connect(&mac, "127.0.0.1", 18789), "ok");
    assert_eq!(agent_connect(&mac, "192.168.1.1", 53), "ok");
    assert!(agent_connect(&mac, "github.com", 80).contains("Connection refused"));
    assert!(agent_connect(&mac, "203.0.113.9", 443).contains("Connection refused"));
    assert!(agent_connect(&mac, "192.168.1.1", 80).contains("Connection refused"));

    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(mac.on_mac(&format!("{SUPPORT}/status.json"))).unwrap()).unwrap();
    let checks: BTreeMap<String, bool> = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"].as_str().unwrap().starts_with("egress-"))
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c["ok"] == true))
        .collect();
    assert_eq!(
        checks,
        BTreeMap::from(
            [
                "egress-pf-enabled",
                "egress-anchor-loaded",
                "egress-allowed-host-connects",
                "egress-other-address-refused"
            ]
            .map(|c| (c.to_owned(), true))
        )
    );
    let log = mac.commands();
    assert!(
        log.contains("sudo -n -u hexagent nc -z -G 5 -w 5 github.com 443\n"),
        "{log}"
    );
    assert!(
        log.contains("sudo -n -u hexagent nc -z -G 5 -w 5 1.1.1.1 443\n"),
        "{log}"
    );
}

#[test]
fn the_self_check_fails_when_the_allowlist_does_not_answer() {
    let mac = Mac::new(apple_sh());
    // github.com no longer resolves on this Mac: its table stays empty, and the probe finds no address.
    fs::remove_file(mac.state.join("dns/github.com")).unwrap();
    let err = mac
        .install(&example())
        .expect_err("the egress self-check must fail");
    assert!(err.contains("hexagent/egress-allowed-host-connects"), "{err}");
    assert!(err.contains("github.com does not resolve"), "{err}");
    let status = fs::read_to_string(mac.on_mac(&format!("{SUPPORT}/status.json"))).unwrap();
    assert!(
        status.contains(r#"{"agent": "hexagent", "check": "egress-allowed-host-connects", "ok": false}"#),
        "{status}"
    );
    assert!(
        status.contains(r#"{"agent": "hexagent", "check": "egress-other-address-refused", "ok": true}"#),
        "{status}"
    );
}

#[test]
fn the_watchdog_refreshes_host_tables_with_a_bounded_ttl() {
    let mac = installed(apple_sh());
    mac.clear_commands();
    // A CDN moved github.com; the resolver now answers two addresses.
    mac.write_state("dns/github.com", "192.0.2.77\n192.0.2.78\n");
    mac.write_state("resolvers", "10.0.0.53 fe80::1%en0 2001:db8::53");
    assert_ok(&watchdog(&mac), "watchdog");
    assert_eq!(table(&mac, "confine_1051_1"), ["192.0.2.77", "192.0.2.78"]);
    assert_eq!(
        table(&mac, "confine_dns"),
        ["10.0.0.53", "2001:db8::53"],
        "scoped addresses are left out"
    );
    assert_eq!(agent_connect(&mac, "github.com", 443), "ok");
    assert!(
        agent_connect(&mac, "192.0.2.10", 443).contains("refused"),
        "the old address is gone"
    );
    let log = mac.commands();
    assert!(
        log.contains(&format!("pfctl -a {ANCHOR} -t confine_1051_1 -T replace -f ")),
        "{log}"
    );
    assert!(
        !log.contains("pfctl -E")
            && !log.contains(" -f /Library/Application Support/confine/halfday-agents/egress-anchor.conf"),
        "{log}"
    );

    // github.com stops resolving: its addresses stay for the TTL, then the table empties (fail closed).
    fs::remove_file(mac.state.join("dns/github.com")).unwrap();
    mac.write_state("now", "1767229200\n"); // one hour later: still within the TTL
    let out = watchdog(&mac);
    assert_ok(&out, "watchdog");
    assert!(output_text(&out).contains("github.com does not resolve: keeping its addresses from 3600 s ago"));
    assert_eq!(table(&mac, "confine_1051_1"), ["192.0.2.77", "192.0.2.78"]);
    mac.write_state("now", "1767229201\n");
    let out = watchdog(&mac);
    assert!(output_text(&out).contains("table confine_1051_1 stays empty until it does"));
    assert_eq!(table(&mac, "confine_1051_1"), Vec::<String>::new());
    assert!(agent_connect(&mac, "192.0.2.77", 443).contains("refused"));
    // It resolves again: back in.
    mac.write_state("dns/github.com", "192.0.2.79\n");
    assert_ok(&watchdog(&mac), "watchdog");
    assert_eq!(table(&mac, "confine_1051_1"), ["192.0.2.79"]);
}

#[test]
fn the_watchdog_reenables_pf_with_its_own_token_and_reloads_a_flushed_anchor() {
    let mac = installed(BASH_POSIX);
    let first = our_token(&mac);
    // An admin (or a VPN client) runs `pfctl -d`: pf stops and every token is void. An OS update flushes
    // the anchor.
    let root_pfctl = |args: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("pfctl {args}")])
            .env("PATH", format!("{}:/usr/bin:/bin", mac.sim.join("bin").display()))
            .env("SIM_LIB", mac.sim.join("simlib.sh"))
            .env("SIM_STATE", &mac.state)
            .output()
            .expect("pfctl");
        assert_ok(&out, args);
        output_text(&out)
    };
    root_pfctl("-d");
    root_pfctl(&format!("-a {ANCHOR} -F all"));
    assert_eq!(
        agent_connect(&mac, "203.0.113.9", 443),
        "ok",
        "unfiltered while pf is off"
    );
    mac.clear_commands();
    let out = watchdog(&mac);
    assert_ok(&out, "watchdog");
    let text = output_text(&out);
    assert!(
        text.contains("the pf anchor com.apple/000.confine.halfday-agents is empty (flushed): reloading it"),
        "{text}"
    );
    let second = our_token(&mac);
    assert_ne!(first, second);
    assert!(
        text.contains(&format!("pf enabled, reference token {second}")),
        "{text}"
    );
    assert!(pf(&mac).join("enabled").exists());
    assert_eq!(
        table(&mac, "confine_1051_1"),
        ["192.0.2.10"],
        "tables filled again after the reload"
    );
    assert!(agent_connect(&mac, "203.0.113.9", 443).contains("refused"));

    // Someone else enabled pf after a `pfctl -d` and will release their token later: the watchdog takes
    // its own, so pf stays on when they do.
    root_pfctl("-d");
    let theirs = root_pfctl("-E");
    let theirs = theirs
        .lines()
        .find_map(|l| l.strip_prefix("Token : "))
        .expect("token")
        .to_owned();
    assert_ok(&watchdog(&mac), "watchdog");
    let third = our_token(&mac);
    assert_eq!(tokens_held(&mac), BTreeSet::from([theirs.clone(), third]));
    root_pfctl(&format!("-X {theirs}"));
    assert!(
        pf(&mac).join("enabled").exists(),
        "our reference keeps pf enabled"
    );

    // Someone replaces pf's main ruleset (here `pfctl -F all`; a VPN loads its own): the anchor stays
    // loaded, but nothing evaluates it. The watchdog says so and never reloads the main ruleset, whose
    // rules may be another tool's; the admin does.
    root_pfctl("-F all");
    assert_eq!(
        agent_connect(&mac, "203.0.113.9", 443),
        "ok",
        "unfiltered without com.apple/*"
    );
    mac.clear_commands();
    let out = watchdog(&mac);
    assert_ok(&out, "watchdog");
    assert!(
        output_text(&out).contains("WARNING: pf's main ruleset does not evaluate com.apple/*"),
        "{}",
        output_text(&out)
    );
    let log = mac.commands();
    assert!(!log.contains("pf.conf"), "the main ruleset was reloaded:\n{log}");
    root_pfctl(&format!("-f {}", mac.on_mac("/etc/pf.conf").display()));
    assert!(agent_connect(&mac, "203.0.113.9", 443).contains("refused"));

    // All in place: a round changes nothing.
    mac.clear_commands();
    assert_ok(&watchdog(&mac), "watchdog");
    let log = mac.commands();
    assert!(
        !log.contains("pfctl -E") && !log.contains("egress-anchor.conf"),
        "{log}"
    );
}

#[test]
fn uninstall_and_a_release_without_egress_remove_it_all() {
    let mac = installed(apple_sh());
    // The next release drops egress: anchor, tables, token, watchdog and its files go.
    mac.install(&plan_from(&example_without_egress()))
        .unwrap_or_else(|e| panic!("release without egress:\n{e}"));
    assert_removed(&mac);
    // Back on, then uninstalled.
    mac.install(&example())
        .unwrap_or_else(|e| panic!("reinstall:\n{e}"));
    assert!(pf(&mac).join("enabled").exists());
    assert_ok(&mac.uninstall(&example()), "uninstall");
    assert_removed(&mac);
}

fn assert_removed(mac: &Mac) {
    assert!(!pf(mac).join("anchors").join(ANCHOR_DIR).exists());
    assert_eq!(tokens_held(mac), BTreeSet::new());
    assert!(
        !pf(mac).join("enabled").exists(),
        "pf is off again: ours was the only reference"
    );
    assert!(!mac.state.join("launchd/com.halfday.agents.egress").exists());
    for path in [
        "/Library/LaunchDaemons/com.halfday.agents.egress.plist".to_owned(),
        format!("{SUPPORT}/egress-state"),
        format!("{SUPPORT}/egress-anchor.conf"),
        format!("{SUPPORT}/egress-watchdog"),
    ] {
        assert!(!mac.on_mac(&path).exists(), "{path} is left");
    }
}

/// The agent, as its real UID, tries to switch the filter off, poison the watchdog's state and lookups,
/// and kill the watchdog mid-run. pf, the watchdog's files and its process are root's: every attempt
/// fails, and the filter comes out as the resolver says.
#[test]
fn the_agent_cannot_stop_or_confuse_the_watchdog() {
    let mac = installed(apple_sh());
    let rules = pf(&mac).join("anchors").join(ANCHOR_DIR).join("rules");
    let before = fs::read_to_string(&rules).unwrap();
    for attack in [
        "pfctl -d".to_owned(),
        format!("pfctl -a {ANCHOR} -F all"),
        format!("pfctl -a {ANCHOR} -t confine_1051_1 -T replace -f /dev/null"),
        format!("pfctl -X {}", our_token(&mac)),
        r#"echo 203.0.113.66 > "$SUPPORT/egress-state/hosts/confine_1051_1""#.to_owned(),
        r#"echo 'pass out quick all' > "$SUPPORT/egress-anchor.conf""#.to_owned(),
        r#"mv "$SUPPORT/egress-state" "$SUPPORT/x""#.to_owned(),
        r#"ln -s /tmp/evil "$SUPPORT/egress-state/dns""#.to_owned(),
        r#"echo 'exit 0' > "$SUPPORT/egress-watchdog""#.to_owned(),
        r#"echo 203.0.113.66 > "$SIM_STATE/dns/github.com""#.to_owned(),
        "launchctl bootout system/com.halfday.agents.egress".to_owned(),
    ] {
        let out = as_agent(&mac, &attack);
        if attack.starts_with("launchctl") {
            // The fake launchctl does not model launchd's own refusal; what matters is that the job's
            // process is root's (below) and that the postinstall and watchdog files are root's.
            continue;
        }
        let text = output_text(&out);
        assert!(!out.status.success(), "the agent could: {attack}\n{text}");
        assert!(
            text.contains("Permission denied") || text.contains("Operation not permitted"),
            "{attack} failed for another reason: {text}"
        );
    }
    assert_eq!(fs::read_to_string(&rules).unwrap(), before);
    assert!(pf(&mac).join("enabled").exists());

    // Lookups are root's own (dscacheutil, the system resolver): files the agent controls are not read.
    // It plants resolver-looking files in its own home and the shared temp folder of the volume.
    let tmp = mac.on_mac("/private/tmp");
    fs::create_dir_all(&tmp).expect("/private/tmp");
    set_mode(&tmp, 0o1777);
    let planted = as_agent(
        &mac,
        &format!(
            "echo '203.0.113.66 github.com' > {home}/.hosts && echo 'github.com 203.0.113.66' > {tmp}/hosts",
            home = mac.on_mac("/Users/hexagent").display(),
            tmp = mac.on_mac("/private/tmp").display()
        ),
    );
    assert_ok(&planted, "planting files in its own trees");
    // A resolver answer that floods or carries junk is cut down to 64 clean addresses.
    let mut flood: String = (0..300)
        .map(|i| format!("10.9.{}.{}\n", i / 200, i % 200))
        .collect();
    flood.insert_str(0, "1.2.3.4; rm -rf /\n$(touch /tmp/confine-egress-pwned)\n");
    mac.write_state("dns/api.github.com", &flood);

    // The agent tries to kill the watchdog while it waits on a slow lookup.
    mac.write_state("dns-hold", "");
    let child = watchdog_command(&mac)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watchdog");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = as_agent(
        &mac,
        &format!("kill -TERM {} ; kill -KILL {}", child.id(), child.id()),
    );
    assert!(!kill.status.success(), "the agent signalled root's watchdog");
    assert!(
        output_text(&kill).contains("Operation not permitted"),
        "{}",
        output_text(&kill)
    );
    fs::remove_file(mac.state.join("dns-hold")).unwrap();
    let out = child.wait_with_output().expect("watchdog");
    assert_ok(&out, "watchdog after the agent's attempts");

    assert_eq!(table(&mac, "confine_1051_1"), ["192.0.2.10"]);
    let flooded = table(&mac, "confine_1051_2");
    assert_eq!(flooded.len(), 64);
    assert!(flooded.iter().all(|a| a.parse::<IpAddr>().is_ok()), "{flooded:?}");
    assert!(!Path::new("/tmp/confine-egress-pwned").exists());
    assert!(agent_connect(&mac, "203.0.113.66", 443).contains("refused"));
    assert_eq!(agent_connect(&mac, "github.com", 443), "ok");
}

#[test]
fn watchdog_and_functions_pass_shellcheck_in_dash_and_bash_posix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = example();
    for f in confine::installer::support_files(&plan).expect("support files") {
        let name = Path::new(&f.path).file_name().unwrap().to_owned();
        fs::write(dir.path().join(name), &f.contents).expect("write");
    }
    fs::write(
        dir.path().join("egress-watchdog"),
        include_str!("../../pkg/egress-watchdog"),
    )
    .unwrap();
    for shell in [apple_sh(), DASH, BASH_POSIX] {
        for file in ["egress-watchdog", "egress.sh"] {
            let out = Command::new(shell[0])
                .args(&shell[1..])
                .arg("-n")
                .arg(file)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert_ok(&out, &format!("{shell:?} -n {file}"));
        }
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-x", "egress-watchdog", "egress.sh"])
        .current_dir(dir.path())
        .output()
        .expect("shellcheck (apt-get install shellcheck)");
    assert_ok(&out, "shellcheck");
}

// ---- Bad allowlists: exit 1 with file:line:column at the offending value, and a way out.

#[test]
fn bad_allowlists_are_located_errors() {
    let entry = "- { to: api.github.com, ports: [443] }";
    let cases = [
        (
            "- { to: 10.0.0.1/8, ports: [443] }",
            "10.0.0.1/8",
            "has host bits set past /8",
        ),
        (
            "- { to: 0.0.0.0/0, ports: [443] }",
            "0.0.0.0/0",
            "a /0 block allows every address",
        ),
        (
            "- { to: 'evil.com; pass all', ports: [443] }",
            "'evil.com",
            "is not a host name",
        ),
        (
            "- { to: github.com, ports: [443] }",
            "github.com",
            "listed twice for tcp",
        ),
        ("- { to: example.org, ports: [] }", "example.org", "has no ports"),
        (
            "- { to: example.org, ports: [443, 70000] }",
            "70000",
            "port 70000 is out of range",
        ),
        (
            "- { to: example.org, ports: [443, 443] }",
            "443]",
            "port 443 is listed twice",
        ),
        (
            "- { to: example.org, ports: [443], protocol: icmp }",
            "icmp",
            "`icmp` is not an allowed value",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, (replacement, needle, message)) in cases.iter().enumerate() {
        let text = crate::util::example_with(entry, replacement);
        let spec = crate::util::write(dir.path(), &format!("egress{i}.yaml"), &text);
        let err = crate::util::refused(&spec);
        let line = text.lines().position(|l| l.contains(replacement)).expect("line") + 1;
        let column = text.lines().nth(line - 1).unwrap().rfind(needle).expect("column") + 1;
        let at = format!("{}:{line}:{column}", spec.display());
        assert!(
            err.contains(message) && err.contains(&at),
            "{replacement}: expected `{message}` at {at}:\n{err}"
        );
    }
    // More than 64 entries: refused at the 65th.
    let many: String = (0..65)
        .map(|i| format!("\n        - {{ to: 192.0.2.{i}, ports: [443] }}"))
        .collect();
    let text = crate::util::example_with(&format!("\n        {entry}"), &many);
    let spec = crate::util::write(dir.path(), "many.yaml", &text);
    let err = crate::util::refused(&spec);
    assert!(err.contains("more than 64 egress entries"), "{err}");
}
