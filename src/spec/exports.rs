//! The optional `exports` block: what `confine export` needs beyond the build to describe the package to
//! Munki (and Workspace ONE), Fleet and Apple MDM servers: where the package is downloaded from, the Munki
//! catalogs and subfolder, the Fleet team.

use schemars::JsonSchema;
use serde::Deserialize;

use super::validate::escape;
use super::{Located, Problem};

/// The placeholder in `exports.url` that stands for a package's file name.
pub const FILE_PLACEHOLDER: &str = "{file}";

/// How the exported descriptions name, find and scope the fleet's packages.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exports {
    /// Where Macs download each package, with `{file}` for its file name, e.g.
    /// `https://packages.example.com/agents/{file}`. Fleet and Apple MDM servers need it; `https://` only.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub url: Option<Located<String>>,
    #[serde(default)]
    pub munki: MunkiExport,
    #[serde(default)]
    pub fleet: FleetExport,
    /// Offer the package in the self-service app (Fleet's `self_service`) rather than install it unasked.
    #[serde(default)]
    pub self_service: bool,
}

/// The Munki repo (also Workspace ONE's Munki-based apps).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MunkiExport {
    /// Subfolder of `pkgs/` and `pkgsinfo/` the package goes into. Defaults to the fleet name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub subdir: Option<Located<String>>,
    /// Catalogs the package is listed in. Defaults to `testing`, as munkiimport does.
    #[serde(default = "default_catalogs")]
    #[schemars(with = "Vec<String>")]
    pub catalogs: Located<Vec<Located<String>>>,
    /// Also let Munki tell "installed" from the agents' LaunchDaemon plists (an `installs` array with
    /// their MD5 checksums) instead of from the package receipt alone.
    #[serde(default)]
    pub installs: bool,
}

impl Default for MunkiExport {
    fn default() -> Self {
        MunkiExport {
            subdir: None,
            catalogs: default_catalogs(),
            installs: false,
        }
    }
}

/// The Fleet GitOps repo.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetExport {
    /// The Fleet team ("fleet" since Fleet renamed teams) that gets the package and the profiles.
    /// Defaults to the organization.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub team: Option<Located<String>>,
}

impl Exports {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        if let Some(url) = &self.url {
            url_template(url, problems);
        }
        if let Some(subdir) = &self.munki.subdir {
            relative_folder(subdir, problems);
        }
        let catalogs = &self.munki.catalogs;
        if catalogs.value.is_empty() {
            problems.push(Problem::at(
                &catalogs.referenced,
                "no Munki catalog: Munki would list the package nowhere",
                "name at least one catalog, e.g. `catalogs: [testing]`",
            ));
        }
        for catalog in &catalogs.value {
            catalog_name(catalog, problems);
        }
        if let Some(team) = &self.fleet.team {
            let v = &team.value;
            if v.trim().is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) {
                problems.push(Problem::at(
                    &team.referenced,
                    format!("Fleet team `{}` is not a usable name", escape(v)),
                    "write the team's name exactly as Fleet shows it",
                ));
            }
        }
    }
}

/// `https://host/path/{file}`: one `{file}`, no other braces, nothing a shell, YAML or plist would
/// treat specially, no credentials (the URL lands in files an admin commits).
fn url_template(value: &Located<String>, problems: &mut Vec<Problem>) {
    let v = value.value.as_str();
    let help = "write the package server's https URL with `{file}` where the package file name goes, e.g. `https://packages.example.com/agents/{file}`";
    let rest = v.strip_prefix("https://");
    let host = rest.map(|r| r.split('/').next().unwrap_or_default());
    let why = if rest.is_none() {
        Some("is not https: a Mac would fetch root's installer in the clear")
    } else if host.is_none_or(|h| h.is_empty() || h.contains('@') || h.contains('{')) {
        Some("has no host name")
    } else if v.matches(FILE_PLACEHOLDER).count() != 1 {
        Some("must contain `{file}` exactly once")
    } else if v.replacen(FILE_PLACEHOLDER, "", 1).contains(['{', '}']) {
        Some("has braces other than `{file}`")
    } else if !v.chars().all(|c| c.is_ascii_graphic())
        || v.contains(['"', '\'', '\\', '<', '>', '`', '$', '#', '?'])
    {
        Some("has characters a URL path does not need (quotes, spaces, `$`, `?`, `#`, …)")
    } else {
        None
    };
    if let Some(why) = why {
        problems.push(Problem::at(
            &value.referenced,
            format!("download URL `{}` {why}", escape(v)),
            help,
        ));
    }
}

/// A folder below the Munki repo's `pkgs/`: slash-separated names of letters, digits, `.`, `_`, `-`.
fn relative_folder(value: &Located<String>, problems: &mut Vec<Problem>) {
    let v = &value.value;
    let ok = !v.is_empty()
        && v.len() <= 200
        && v.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if !ok {
        problems.push(Problem::at(
            &value.referenced,
            format!("Munki subfolder `{}` is not a relative folder", escape(v)),
            "write folder names of letters, digits, `.`, `_` and `-` separated by `/`, e.g. `agents/confine`",
        ));
    }
}

fn catalog_name(value: &Located<String>, problems: &mut Vec<Problem>) {
    let v = &value.value;
    let ok = !v.is_empty()
        && v.len() <= 100
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        problems.push(Problem::at(
            &value.referenced,
            format!("Munki catalog `{}` is not a catalog name", escape(v)),
            "a catalog is a file name in the repo's `catalogs/`: letters, digits, `.`, `_` and `-`",
        ));
    }
}

fn default_catalogs() -> Located<Vec<Located<String>>> {
    let testing = super::model::unlocated("testing".to_owned());
    super::model::unlocated(vec![testing])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_problems(v: &str) -> usize {
        let mut p = Vec::new();
        url_template(&super::super::model::unlocated(v.to_owned()), &mut p);
        p.len()
    }

    #[test]
    fn download_urls() {
        assert_eq!(url_problems("https://packages.example.com/agents/{file}"), 0);
        assert_eq!(url_problems("https://example.com/{file}"), 0);
        assert_eq!(url_problems("http://example.com/{file}"), 1);
        assert_eq!(url_problems("https://example.com/agents.pkg"), 1);
        assert_eq!(url_problems("https://example.com/{file}/{file}"), 1);
        assert_eq!(url_problems("https://example.com/{name}/{file}"), 1);
        assert_eq!(url_problems("https://user:pw@example.com/{file}"), 1);
        assert_eq!(url_problems("https:///{file}"), 1);
        assert_eq!(url_problems("https://example.com/$HOME/{file}"), 1);
        assert_eq!(url_problems("https://example.com/a b/{file}"), 1);
    }
}
