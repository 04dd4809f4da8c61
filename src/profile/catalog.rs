//! The payload catalog: what confine knows about each payload type it emits, and the checker that holds a
//! profile to it.
//!
//! The catalog is the YAML under `profiles/` at the repository root (format in `profiles/README.md`), embedded
//! at build time. We wrote it from Apple's Device Management reference
//! (<https://developer.apple.com/documentation/devicemanagement>): keys, types, required keys, allowed values,
//! ranges, formats, the macOS version that introduced (or removed) a payload or key, the MDM channel, and
//! whether it needs user-approved MDM, supervision, or MDM delivery. A profile is checked for: value types
//! (strictly: `<integer>` is not `<boolean>`, as Apple Business Manager rejects it), missing required keys,
//! values outside the allowed list or range, malformed UUIDs, unknown keys, keys or payloads newer than the
//! fleet's minimum macOS, payloads the profile's `PayloadScope` cannot deliver, and duplicate identifiers.
//!
//! Not supported: string `format`s other than `uuid`, `repetition` bounds, and the content of payload types the
//! catalog does not list (their common keys are still checked; the rest is a warning).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use plist::{Dictionary, Value};
use serde::Deserialize;

use super::{Finding, Severity};

/// One catalog file: its name (the PayloadType) and its text.
macro_rules! catalog_file {
    ($name:literal) => {
        ($name, include_str!(concat!("../../profiles/", $name, ".yaml")))
    };
}

/// The catalog files, embedded at build time.
const FILES: &[(&str, &str)] = &[
    catalog_file!("Configuration"),
    catalog_file!("CommonPayloadKeys"),
    catalog_file!("com.apple.ManagedClient.preferences"),
    catalog_file!("com.apple.MCX"),
    catalog_file!("com.apple.TCC.configuration-profile-policy"),
    catalog_file!("com.apple.applicationaccess"),
    catalog_file!("com.apple.loginwindow"),
    catalog_file!("com.apple.security.firewall"),
    catalog_file!("com.apple.security.root"),
    catalog_file!("com.apple.servicemanagement"),
    catalog_file!("com.apple.systempolicy.control"),
    catalog_file!("com.apple.systempolicy.managed"),
];

/// The `PayloadType` of a profile's top level.
pub(crate) const CONFIGURATION: &str = "Configuration";
const COMMON: &str = "CommonPayloadKeys";

/// A macOS version such as `10.14.4`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MacOsVersion([u32; 3]);

impl MacOsVersion {
    /// Parses `14`, `14.0` or `10.14.4`.
    pub(crate) fn parse(text: &str) -> Option<MacOsVersion> {
        let mut parts = [0; 3];
        let mut count = 0;
        for part in text.trim().split('.') {
            let slot = parts.get_mut(count)?;
            *slot = part.parse().ok()?;
            count += 1;
        }
        (count > 0).then_some(MacOsVersion(parts))
    }
}

impl fmt::Display for MacOsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.0;
        if patch == 0 {
            write!(f, "{major}.{minor}")
        } else {
            write!(f, "{major}.{minor}.{patch}")
        }
    }
}

impl<'de> Deserialize<'de> for MacOsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MacOsVersion::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a macOS version")))
    }
}

/// The MDM channel a payload arrives on: the device channel installs System-scoped profiles, the user channel
/// User-scoped ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Channel {
    Device,
    User,
}

/// What the catalog knows about one payload type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PayloadSchema {
    payload_type: String,
    pub(crate) title: String,
    /// Apple's reference page, named in messages.
    source: String,
    /// The macOS version that introduced the payload.
    pub(crate) macos: MacOsVersion,
    channels: Vec<Channel>,
    /// Needs user-approved MDM (or Automated Device Enrollment).
    #[serde(default)]
    pub(crate) user_approved_mdm: bool,
    #[serde(default)]
    pub(crate) supervised: bool,
    /// Whether a user may install it by opening the file.
    #[serde(default = "yes")]
    pub(crate) manual_install: bool,
    keys: BTreeMap<String, KeySchema>,
}

/// What the catalog knows about one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySchema {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    allowed: Vec<Allowed>,
    #[serde(default)]
    range: Option<Range>,
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    pub(crate) macos: Option<MacOsVersion>,
    #[serde(default)]
    removed: Option<MacOsVersion>,
    #[serde(default)]
    supervised: bool,
    /// A dictionary's known keys.
    #[serde(default)]
    keys: BTreeMap<String, KeySchema>,
    /// The schema of every value of a dictionary whose keys are free-form.
    #[serde(default)]
    values: Option<Box<KeySchema>>,
    /// The schema of an array's items.
    #[serde(default)]
    items: Option<Box<KeySchema>>,
    /// Groups of keys of which a dictionary holds exactly one.
    #[serde(default)]
    exactly_one_of: Vec<Vec<String>>,
}

/// A plist value type, in Apple's vocabulary, plus `payload` (a payload dictionary checked against its own
/// PayloadType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    String,
    Integer,
    Real,
    Boolean,
    Data,
    Date,
    Array,
    Dictionary,
    Any,
    Payload,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Allowed {
    Integer(i64),
    String(String),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    min: i64,
    max: i64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// 36 characters: 8-4-4-4-12 hexadecimal digits.
    Uuid,
}

/// Every payload schema, by PayloadType.
#[derive(Debug)]
pub(crate) struct Catalog {
    schemas: BTreeMap<String, PayloadSchema>,
}

fn yes() -> bool {
    true
}

/// The embedded catalog, parsed once.
pub(crate) fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| match load(FILES) {
        Ok(catalog) => catalog,
        // The catalog is our own build-time data, covered by a unit test; a broken file is a bug in confine.
        Err(e) => panic!("the embedded payload catalog is broken: {e}"),
    })
}

fn load(files: &[(&str, &str)]) -> Result<Catalog, String> {
    let mut schemas = BTreeMap::new();
    for (name, text) in files {
        let schema: PayloadSchema =
            serde_saphyr::from_str(text).map_err(|e| format!("profiles/{name}.yaml: {e}"))?;
        if schema.payload_type != *name {
            return Err(format!(
                "profiles/{name}.yaml describes `{}`",
                schema.payload_type
            ));
        }
        schemas.insert(schema.payload_type.clone(), schema);
    }
    for required in [CONFIGURATION, COMMON] {
        if !schemas.contains_key(required) {
            return Err(format!("profiles/{required}.yaml is missing"));
        }
    }
    Ok(Catalog { schemas })
}

impl Catalog {
    /// The schema of a payload type, if the catalog knows it (the top level and common keys excluded).
    pub(crate) fn payload(&self, payload_type: &str) -> Option<&PayloadSchema> {
        self.schemas
            .get(payload_type)
            .filter(|_| payload_type != CONFIGURATION && payload_type != COMMON)
    }

    fn schema(&self, payload_type: &str) -> &PayloadSchema {
        match self.schemas.get(payload_type) {
            Some(schema) => schema,
            None => unreachable!("load() checks that {payload_type} is present"),
        }
    }

    /// The schema of a key inside a payload, following dictionary keys (`["Services", "ScreenCapture"]`).
    pub(crate) fn key(&self, payload_type: &str, path: &[&str]) -> Option<&KeySchema> {
        let (first, rest) = path.split_first()?;
        let mut key = self.payload(payload_type)?.keys.get(*first)?;
        for name in rest {
            key = key.keys.get(*name)?;
        }
        Some(key)
    }

    /// Whether a key exists on Macs running `minimum` (introduced no later, not removed by then).
    pub(crate) fn key_available(
        &self,
        payload_type: &str,
        path: &[&str],
        minimum: Option<MacOsVersion>,
    ) -> bool {
        let Some(key) = self.key(payload_type, path) else {
            return false;
        };
        let Some(minimum) = minimum else {
            return true;
        };
        key.macos.is_none_or(|v| v <= minimum) && key.removed.is_none_or(|v| v > minimum)
    }

    /// Checks a whole profile (its top-level dictionary) for a fleet whose oldest Mac runs `minimum`; without
    /// a minimum, version checks are limited to warnings about removed keys.
    pub(crate) fn check_profile(&self, profile: &Value, minimum: Option<MacOsVersion>) -> Vec<Finding> {
        let mut checker = Checker {
            catalog: self,
            minimum,
            scope: None,
            findings: Vec::new(),
        };
        let Some(dict) = profile.as_dictionary() else {
            checker.error("", "a profile is a dictionary at the top level".to_owned());
            return checker.findings;
        };
        checker.scope = dict
            .get("PayloadScope")
            .and_then(Value::as_string)
            .map(str::to_owned);
        let top = self.schema(CONFIGURATION);
        checker.keys(dict, &Rule::new(&top.keys, None, &top.title), "");
        checker.unique_identifiers(dict);
        checker.findings
    }
}

/// How to check one dictionary: its known keys, the schema of other keys' values (if free-form), groups of
/// which exactly one key is present, and how messages name it.
struct Rule<'a> {
    keys: BTreeMap<&'a str, &'a KeySchema>,
    values: Option<&'a KeySchema>,
    exactly_one_of: &'a [Vec<String>],
    what: String,
    /// Apple's reference page, for payload dictionaries.
    source: &'a str,
}

impl<'a> Rule<'a> {
    fn new(keys: &'a BTreeMap<String, KeySchema>, values: Option<&'a KeySchema>, what: &str) -> Rule<'a> {
        Rule {
            keys: keys.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            values,
            exactly_one_of: &[],
            what: what.to_owned(),
            source: "",
        }
    }
}

struct Checker<'a> {
    catalog: &'a Catalog,
    minimum: Option<MacOsVersion>,
    scope: Option<String>,
    findings: Vec<Finding>,
}

impl<'a> Checker<'a> {
    fn error(&mut self, path: &str, message: String) {
        self.push(Severity::Error, path, message, false);
    }

    fn warning(&mut self, path: &str, message: String) {
        self.push(Severity::Warning, path, message, false);
    }

    fn push(&mut self, severity: Severity, path: &str, message: String, version_gate: bool) {
        self.findings.push(Finding {
            severity,
            path: path.to_owned(),
            message,
            version_gate,
        });
    }

    /// One payload dictionary: the common keys plus its type's own keys.
    fn payload(&mut self, dict: &Dictionary, path: &str) {
        let common = &self.catalog.schema(COMMON).keys;
        let Some(payload_type) = dict.get("PayloadType").and_then(Value::as_string) else {
            self.keys(dict, &Rule::new(common, None, "a payload"), path);
            return;
        };
        let Some(schema) = self.catalog.payload(payload_type) else {
            self.warning(
                path,
                format!("confine's catalog does not know PayloadType `{payload_type}`; only its common keys were checked"),
            );
            self.keys(dict, &Rule::new(common, Some(&ANY), payload_type), path);
            return;
        };
        self.introduced(path, payload_type, schema.macos);
        self.channel(path, schema);
        let mut rule = Rule::new(common, None, &schema.title);
        rule.keys.extend(schema.keys.iter().map(|(k, v)| (k.as_str(), v)));
        rule.source = &schema.source;
        self.keys(dict, &rule, path);
    }

    fn keys(&mut self, dict: &Dictionary, rule: &Rule<'a>, path: &str) {
        let what = &rule.what;
        for (name, value) in dict {
            let at = join(path, name);
            match rule.keys.get(name.as_str()).copied().or(rule.values) {
                Some(schema) => self.value(value, schema, &at, name),
                // Many tools emit PayloadEnabled; Apple does not define it and Jamf flags it.
                None if name == "PayloadEnabled" => self.warning(
                    &at,
                    "`PayloadEnabled` is not an Apple key; macOS ignores it".to_owned(),
                ),
                None if rule.source.is_empty() => {
                    self.error(&at, format!("`{name}` is not a key of {what}"));
                }
                None => self.error(
                    &at,
                    format!("`{name}` is not a key of {what} (see {})", rule.source),
                ),
            }
        }
        for (name, schema) in &rule.keys {
            if schema.required && !dict.contains_key(name) {
                self.error(path, format!("{what} is missing the required key `{name}`"));
            }
        }
        for group in rule.exactly_one_of {
            let present = group.iter().filter(|k| dict.contains_key(k.as_str())).count();
            if present != 1 {
                self.error(
                    path,
                    format!(
                        "{what} needs exactly one of `{}`; it has {present}",
                        group.join("`, `")
                    ),
                );
            }
        }
    }

    fn value(&mut self, value: &Value, schema: &'a KeySchema, path: &str, name: &str) {
        if !self.kind(value, schema.kind, path) {
            return;
        }
        self.versions(path, name, schema);
        if !schema.allowed.is_empty() && !schema.allowed.iter().any(|a| a.matches(value)) {
            let allowed: Vec<String> = schema.allowed.iter().map(ToString::to_string).collect();
            self.error(
                path,
                format!(
                    "{} is not an allowed value of `{name}`; allowed: {}",
                    describe(value),
                    allowed.join(", ")
                ),
            );
        }
        if let (Some(range), Some(n)) = (schema.range, value.as_signed_integer())
            && !(range.min..=range.max).contains(&n)
        {
            self.error(
                path,
                format!("`{name}` is {n}; it must be {} to {}", range.min, range.max),
            );
        }
        if let (Some(Format::Uuid), Some(text)) = (schema.format, value.as_string())
            && !is_uuid(text)
        {
            self.error(
                path,
                format!("`{text}` is not a UUID (8-4-4-4-12 hexadecimal digits, 36 characters)"),
            );
        }
        self.children(value, schema, path, name);
    }

    fn children(&mut self, value: &Value, schema: &'a KeySchema, path: &str, name: &str) {
        match value {
            Value::Array(items) => {
                if let Some(item_schema) = schema.items.as_deref() {
                    for (i, item) in items.iter().enumerate() {
                        self.value(item, item_schema, &format!("{path}[{i}]"), name);
                    }
                }
            }
            Value::Dictionary(dict) if schema.kind == Kind::Payload => self.payload(dict, path),
            Value::Dictionary(dict) if schema.kind == Kind::Dictionary => {
                let what = format!("`{name}`");
                let mut rule = Rule::new(&schema.keys, schema.values.as_deref(), &what);
                rule.exactly_one_of = &schema.exactly_one_of;
                self.keys(dict, &rule, path);
            }
            _ => {}
        }
    }

    /// Checks the plist type; returns whether it matched (children are only checked then).
    fn kind(&mut self, value: &Value, kind: Kind, path: &str) -> bool {
        let ok = match kind {
            Kind::Any => true,
            Kind::String => matches!(value, Value::String(_)),
            Kind::Integer => matches!(value, Value::Integer(_)),
            Kind::Real => matches!(value, Value::Real(_)),
            Kind::Boolean => matches!(value, Value::Boolean(_)),
            Kind::Data => matches!(value, Value::Data(_)),
            Kind::Date => matches!(value, Value::Date(_)),
            Kind::Array => matches!(value, Value::Array(_)),
            Kind::Dictionary | Kind::Payload => matches!(value, Value::Dictionary(_)),
        };
        if !ok {
            self.error(
                path,
                format!("expected {}, found {}", kind.plist_name(), describe(value)),
            );
        }
        ok
    }

    fn introduced(&mut self, path: &str, what: &str, introduced: MacOsVersion) {
        if let Some(minimum) = self.minimum.filter(|m| introduced > *m) {
            let message =
                format!("`{what}` needs macOS {introduced}, but the fleet's minimum macOS is {minimum}");
            self.push(Severity::Error, path, message, true);
        }
    }

    fn versions(&mut self, path: &str, name: &str, schema: &KeySchema) {
        if let Some(introduced) = schema.macos {
            self.introduced(path, name, introduced);
        }
        if let Some(removed) = schema.removed {
            let message = format!("`{name}` was removed in macOS {removed}");
            match self.minimum {
                Some(minimum) if removed <= minimum => self.push(
                    Severity::Error,
                    path,
                    format!("{message}, and the fleet's minimum macOS is {minimum}"),
                    true,
                ),
                _ => self.warning(path, format!("{message}; newer Macs ignore it")),
            }
        }
        if schema.supervised {
            self.warning(path, format!("`{name}` only applies to supervised Macs"));
        }
    }

    /// A device-channel-only payload cannot arrive in a User-scoped profile, and the reverse.
    fn channel(&mut self, path: &str, schema: &PayloadSchema) {
        let device = schema.channels.contains(&Channel::Device);
        let user = schema.channels.contains(&Channel::User);
        match self.scope.as_deref() {
            Some("User") if !user => self.error(
                path,
                format!(
                    "`{}` is only delivered on the device channel; the profile's PayloadScope must be System",
                    schema.payload_type
                ),
            ),
            Some("System") if !device => self.error(
                path,
                format!(
                    "`{}` is only delivered on the user channel; the profile's PayloadScope must be User",
                    schema.payload_type
                ),
            ),
            None if !user => self.warning(
                path,
                format!(
                    "`{}` is only delivered on the device channel; set the profile's PayloadScope to System",
                    schema.payload_type
                ),
            ),
            _ => {}
        }
    }

    /// PayloadIdentifier and PayloadUUID must be unique within the profile (the top level included).
    fn unique_identifiers(&mut self, top: &Dictionary) {
        let payloads = top
            .get("PayloadContent")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for key in ["PayloadIdentifier", "PayloadUUID"] {
            let mut seen = BTreeSet::new();
            if let Some(v) = top.get(key).and_then(Value::as_string) {
                seen.insert(v.to_ascii_uppercase());
            }
            for (i, payload) in payloads.iter().enumerate() {
                let value = payload
                    .as_dictionary()
                    .and_then(|d| d.get(key))
                    .and_then(Value::as_string);
                if let Some(v) = value
                    && !seen.insert(v.to_ascii_uppercase())
                {
                    self.error(
                        &format!("PayloadContent[{i}].{key}"),
                        format!("{key} `{v}` is used twice in this profile"),
                    );
                }
            }
        }
    }
}

/// The schema of a value nothing is known about.
static ANY: KeySchema = KeySchema {
    kind: Kind::Any,
    required: false,
    allowed: Vec::new(),
    range: None,
    format: None,
    macos: None,
    removed: None,
    supervised: false,
    keys: BTreeMap::new(),
    values: None,
    items: None,
    exactly_one_of: Vec::new(),
};

impl Kind {
    fn plist_name(self) -> &'static str {
        match self {
            Kind::String => "<string>",
            Kind::Integer => "<integer>",
            Kind::Real => "<real>",
            Kind::Boolean => "<boolean>",
            Kind::Data => "<data>",
            Kind::Date => "<date>",
            Kind::Array => "<array>",
            Kind::Dictionary | Kind::Payload => "<dictionary>",
            Kind::Any => "any value",
        }
    }
}

impl Allowed {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Allowed::Integer(a), Value::Integer(v)) => v.as_signed() == Some(*a),
            (Allowed::String(a), Value::String(v)) => a == v,
            _ => false,
        }
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::Integer(n) => write!(f, "{n}"),
            Allowed::String(s) => write!(f, "`{s}`"),
        }
    }
}

/// A value as a message shows it: its plist type and, for scalars, the value.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("<string> `{}`", s.escape_debug()),
        Value::Integer(n) => format!("<integer> {n}"),
        Value::Real(r) => format!("<real> {r}"),
        Value::Boolean(b) => format!("<boolean> {b}"),
        Value::Data(_) => "<data>".to_owned(),
        Value::Date(_) => "<date>".to_owned(),
        Value::Array(_) => "<array>".to_owned(),
        Value::Dictionary(_) => "<dictionary>".to_owned(),
        _ => "an unsupported plist value".to_owned(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12] && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_loads() {
        let catalog = catalog();
        assert!(catalog.payload("com.apple.security.firewall").is_some());
        assert!(catalog.payload(CONFIGURATION).is_none());
        assert_eq!(
            catalog
                .key(
                    "com.apple.TCC.configuration-profile-policy",
                    &["Services", "SystemPolicyAppData"]
                )
                .and_then(|k| k.macos),
            MacOsVersion::parse("14.0")
        );
    }

    #[test]
    fn versions_compare_numerically() {
        let v = |s| MacOsVersion::parse(s).expect("version");
        assert!(v("10.14.4") < v("10.15"));
        assert!(v("9.0") < v("10.0"));
        assert_eq!(v("14"), v("14.0"));
        assert_eq!(v("10.14.4").to_string(), "10.14.4");
        assert_eq!(MacOsVersion::parse("14.x"), None);
        assert_eq!(MacOsVersion::parse("1.2.3.4"), None);
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("F4B204F7-AA5C-4904-8F0F-E7149501F602"));
        assert!(!is_uuid("F4B204F7-AA5C-4904-8F0F-E7149501F6023"));
        assert!(!is_uuid("F4B204F7AA5C49048F0FE7149501F602"));
    }
}
