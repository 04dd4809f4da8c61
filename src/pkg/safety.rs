//! What a careful admin (and Installer, where it checks) refuses in a component package even when every
//! checksum holds: a payload that writes outside its install location, a script name that reaches
//! outside the Scripts folder, and an install location that is not an absolute path.
//!
//! Installer extracts the Payload below PackageInfo's `install-location` and runs the scripts it names
//! from the expanded Scripts folder (Apple's `PackageInfo` reference, `man installer`). A `..` or an
//! absolute path in the Payload, or a file placed beneath a symlink the same Payload creates, lands
//! wherever the package's author chose, whatever the install location says. Paths are compared as APFS
//! compares them (see [`apfs_key`]), since that is how the Mac resolves them.

use std::collections::HashSet;

use crate::spec::apfs_key;

/// A payload path without its `./` and `.` components: `./a/./b` → `a/b`, `.` → ``.
fn relative(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Problems with the Payload's paths: absolute, climbing with `..`, or beneath a symlink of the same
/// Payload. `entries` are the Payload's paths with whether each is a symlink.
pub(crate) fn payload_paths<'a>(
    label: &str,
    entries: impl Iterator<Item = (&'a str, bool)> + Clone,
    problems: &mut Vec<String>,
) {
    let links: HashSet<String> = entries
        .clone()
        .filter(|(_, is_link)| *is_link)
        .map(|(path, _)| apfs_key(&relative(path)))
        .collect();
    for (path, _) in entries {
        if path.starts_with('/') {
            problems.push(format!(
                "{label}: Payload path {path} is absolute; it would not stay below the install location"
            ));
        } else if path.split('/').any(|c| c == "..") {
            problems.push(format!(
                "{label}: Payload path {path} climbs out of the install location with `..`"
            ));
        } else if !links.is_empty() {
            let key = apfs_key(&relative(path));
            if let Some(link) = key
                .match_indices('/')
                .map(|(at, _)| &key[..at])
                .find(|ancestor| links.contains(*ancestor))
            {
                problems.push(format!(
                    "{label}: Payload path {path} is beneath ./{link}, a symlink of the same Payload: \
                     it would be written wherever the link points"
                ));
            }
        }
    }
}

/// Problems with the script names PackageInfo declares: Installer runs `<scripts>/<name>`, so a name must
/// be a plain file name (an optional `./` aside).
pub(crate) fn script_names(label: &str, declared: &[&str], problems: &mut Vec<String>) {
    for file in declared {
        let name = file.strip_prefix("./").unwrap_or(file);
        if name.is_empty() || name.contains('/') || name == ".." || name == "." {
            problems.push(format!(
                "{label}: PackageInfo names script {file}, which is not a plain file name in Scripts"
            ));
        }
    }
}

/// A problem with PackageInfo's `install-location`: it must be present and absolute.
pub(crate) fn install_location(label: &str, location: Option<&str>, problems: &mut Vec<String>) {
    match location {
        None => problems.push(format!(
            "{label}: PackageInfo has no install-location; the Payload's destination would be up to Installer"
        )),
        Some(location) if !location.starts_with('/') || location.split('/').any(|c| c == "..") => problems
            .push(format!(
                "{label}: PackageInfo install-location {location:?} is not an absolute path without `..`"
            )),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(entries: &[(&str, bool)]) -> Vec<String> {
        let mut problems = Vec::new();
        payload_paths("c.pkg", entries.iter().copied(), &mut problems);
        problems
    }

    #[test]
    fn payload_paths_stay_below_the_install_location() {
        assert!(payload(&[(".", false), ("./a", false), ("./a/b", false), ("./l", true)]).is_empty());
        assert_eq!(payload(&[("/etc/sudoers", false)]).len(), 1);
        assert_eq!(payload(&[("./a/../../etc/x", false)]).len(), 1);
        let beneath = payload(&[("./Link", true), ("./link/x", false), ("./a/./x", false)]);
        assert_eq!(beneath.len(), 1, "{beneath:?}");
        assert!(beneath[0].contains("./link/x is beneath ./link"), "{beneath:?}");
    }

    #[test]
    fn scripts_and_install_locations() {
        let mut problems = Vec::new();
        script_names("c", &["./postinstall", "preinstall"], &mut problems);
        assert!(problems.is_empty());
        script_names("c", &["../../bin/sh", "./a/b", ".."], &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let mut problems = Vec::new();
        install_location("c", Some("/"), &mut problems);
        install_location("c", Some("/Library/ScriptingAdditions/"), &mut problems);
        assert!(problems.is_empty());
        install_location("c", None, &mut problems);
        install_location("c", Some("Library"), &mut problems);
        install_location("c", Some("/a/../b"), &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
