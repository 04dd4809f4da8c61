//! Is the profile an MDM holds the one confine built? MDMs rewrite profiles on the way in: Jamf Pro gives
//! every payload a new `PayloadUUID` and the profile a new `PayloadIdentifier`, adds keys such as
//! `PayloadEnabled`, `PayloadScope` or `PayloadOrganization`, re-indents the XML and trims strings. A
//! byte comparison would see a permanent change, so both sides are compared after normalising that away.
//!
//! The rules: `PayloadUUID` and `PayloadIdentifier` are ignored everywhere; a key from
//! [`MDM_ADDED_KEYS`] the MDM holds and confine's copy lacks is ignored; strings compare trimmed. Anything
//! else (a value confine sets, a key confine sets or removed) is a change.
//!
//! Profiles an MDM answers with are read within `validate`'s limits ([`crate::profile::reader`]): a
//! deeply nested one or a binary plist whose shared objects expand without end is simply not the same
//! profile, never a stack overflow or gigabytes of memory.

use plist::Value;

use crate::profile::reader::parse_plist;

/// Keys an MDM adds to payloads it stores.
const MDM_ADDED_KEYS: &[&str] = &[
    "PayloadEnabled",
    "PayloadScope",
    "PayloadOrganization",
    "PayloadDescription",
    "PayloadDisplayName",
    "PayloadRemovalDisallowed",
    "PayloadVersion",
];

/// Keys an MDM regenerates.
const REGENERATED_KEYS: &[&str] = &["PayloadUUID", "PayloadIdentifier"];

/// Whether the MDM's copy `theirs` holds the same profile as `ours` (both property lists, XML or binary).
pub fn same_profile(ours: &[u8], theirs: &[u8]) -> bool {
    difference(ours, theirs).is_none()
}

/// Where the MDM's copy `theirs` first differs from `ours`: a key path such as
/// `PayloadContent[0].Services.SystemPolicyAllFiles[0].CodeRequirement`, or `(the whole profile)` when
/// either side does not parse; `None` when they hold the same profile.
pub fn difference(ours: &[u8], theirs: &[u8]) -> Option<String> {
    match (parse_plist(ours), parse_plist(theirs)) {
        (Ok(ours), Ok(theirs)) => differs(&ours, &theirs, ""),
        _ => Some("(the whole profile)".to_owned()),
    }
}

/// Whether a profile is the one confine built as `identifier`: its own `PayloadIdentifier` is it, or it
/// has payloads and every one's `PayloadIdentifier` lies under it (`identifier.…`), which survives an
/// MDM that rewrites the top-level identity. (A build's profile identifiers are siblings,
/// `<fleet>.profile.<name>`, so none lies under another.)
pub fn belongs_to(profile: &[u8], identifier: &str) -> bool {
    let Ok(value) = parse_plist(profile) else {
        return false;
    };
    let Some(dict) = value.as_dictionary() else {
        return false;
    };
    if dict.get("PayloadIdentifier").and_then(Value::as_string) == Some(identifier) {
        return true;
    }
    let under = format!("{identifier}.");
    let payloads = dict.get("PayloadContent").and_then(Value::as_array);
    payloads.is_some_and(|items| {
        !items.is_empty()
            && items.iter().all(|item| {
                item.as_dictionary()
                    .and_then(|d| d.get("PayloadIdentifier"))
                    .and_then(Value::as_string)
                    .is_some_and(|id| id.starts_with(&under))
            })
    })
}

/// The top-level `PayloadDisplayName` of a profile, if it parses.
pub fn display_name(profile: &[u8]) -> Option<String> {
    top_level_string(profile, "PayloadDisplayName")
}

/// `ours` with the top-level `PayloadUUID` and `PayloadIdentifier` of `theirs` (XML plist out).
pub fn with_identity_of(ours: &[u8], theirs: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut profile = parse_plist(ours)?;
    let dict = profile
        .as_dictionary_mut()
        .ok_or_else(|| anyhow::anyhow!("the profile is not a dictionary"))?;
    for key in REGENERATED_KEYS {
        if let Some(value) = top_level_string(theirs, key) {
            dict.insert((*key).to_owned(), Value::String(value));
        }
    }
    let mut out = Vec::new();
    profile.to_writer_xml(&mut out)?;
    Ok(out)
}

fn top_level_string(profile: &[u8], key: &str) -> Option<String> {
    let value = parse_plist(profile).ok()?;
    value.as_dictionary()?.get(key)?.as_string().map(str::to_owned)
}

fn differs(ours: &Value, theirs: &Value, at: &str) -> Option<String> {
    let here = || {
        Some(if at.is_empty() {
            "(top level)".to_owned()
        } else {
            at.to_owned()
        })
    };
    let key_path = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}.{k}")
        }
    };
    match (ours, theirs) {
        (Value::Dictionary(a), Value::Dictionary(b)) => {
            // The profile's display name is the MDM record's name, compared there; Kandji rewrites it.
            let renamed = |k: &String| at.is_empty() && k == "PayloadDisplayName";
            let relevant = |k: &String| !REGENERATED_KEYS.contains(&k.as_str()) && !renamed(k);
            for k in a.keys().filter(|k| relevant(k)) {
                match b.get(k) {
                    Some(theirs) => {
                        if let Some(path) = differs(&a[k], theirs, &key_path(k)) {
                            return Some(path);
                        }
                    }
                    None => return Some(key_path(k)),
                }
            }
            b.keys()
                .find(|k| relevant(k) && !a.contains_key(k.as_str()) && !MDM_ADDED_KEYS.contains(&k.as_str()))
                .map(|k| key_path(k))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| differs(x, y, &format!("{at}[{i}]"))),
        (Value::String(a), Value::String(b)) if a.trim() == b.trim() => None,
        (Value::Integer(a), Value::Real(b)) | (Value::Real(b), Value::Integer(a))
            if a.as_signed().is_some_and(|a| a as f64 == *b) =>
        {
            None
        }
        _ if ours == theirs => None,
        _ => here(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plist(body: &str) -> Vec<u8> {
        format!(r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#)
            .into_bytes()
    }

    const OURS: &str = "<key>PayloadIdentifier</key><string>com.example.p</string><key>PayloadUUID</key><string>A</string><key>PayloadContent</key><array><dict><key>PayloadUUID</key><string>B</string><key>EnableFirewall</key><true/></dict></array>";

    #[test]
    fn jamf_rewrites_are_not_changes() {
        let theirs = "<key>PayloadIdentifier</key><string>0F0F</string><key>PayloadUUID</key><string>0F0F</string><key>PayloadContent</key><array><dict><key>PayloadUUID</key><string>C</string><key>PayloadEnabled</key><true/><key>EnableFirewall</key><true/></dict></array><key>PayloadScope</key><string>System</string>";
        assert!(same_profile(&plist(OURS), &plist(theirs)));
    }

    #[test]
    fn updates_keep_the_mdm_identity() {
        let theirs = plist(
            "<key>PayloadIdentifier</key><string>0F0F</string><key>PayloadUUID</key><string>0E0E</string>",
        );
        let kept = with_identity_of(&plist(OURS), &theirs).expect("rewritten");
        assert_eq!(
            top_level_string(&kept, "PayloadIdentifier").as_deref(),
            Some("0F0F")
        );
        assert_eq!(top_level_string(&kept, "PayloadUUID").as_deref(), Some("0E0E"));
        assert!(same_profile(&plist(OURS), &kept));
    }

    #[test]
    fn profiles_are_recognised_by_their_payloads() {
        let kandji = OURS.replace(
            "<string>com.example.p</string>",
            "<string>com.kandji.profile.custom.7</string>",
        );
        let kandji = kandji.replace(
            "<key>PayloadUUID</key><string>B</string>",
            "<key>PayloadUUID</key><string>B</string><key>PayloadIdentifier</key><string>com.example.p.firewall</string>",
        );
        assert!(belongs_to(&plist(&kandji), "com.example.p"));
        assert!(!belongs_to(&plist(&kandji), "com.example.q"));
        assert!(belongs_to(&plist(OURS), "com.example.p"));
        assert!(!belongs_to(&plist(OURS), "com.example.q"));
    }

    #[test]
    fn real_changes_are_changes() {
        let flipped = OURS.replace("<true/></dict>", "<false/></dict>");
        assert!(!same_profile(&plist(OURS), &plist(&flipped)));
        let extra = OURS.replace(
            "</dict></array>",
            "<key>BlockAllIncoming</key><true/></dict></array>",
        );
        assert!(
            !same_profile(&plist(OURS), &plist(&extra)),
            "a key confine no longer sets"
        );
        assert!(
            !same_profile(&plist(&extra), &plist(OURS)),
            "a key confine now sets"
        );
        assert!(!same_profile(&plist(OURS), b"not a plist"));
        assert_eq!(
            difference(&plist(OURS), &plist(&flipped)).as_deref(),
            Some("PayloadContent[0].EnableFirewall")
        );
    }
}
