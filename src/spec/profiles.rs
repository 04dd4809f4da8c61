//! The `hardening.profiles` block: which configuration profiles the fleet emits.

use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration profiles for the agent host. Each block can be turned off.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    /// Managed Login Items (`com.apple.servicemanagement`): pins every agent daemon so a user cannot turn
    /// it off in System Settings › Login Items.
    #[serde(default = "yes")]
    pub managed_login_items: bool,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            managed_login_items: true,
        }
    }
}

fn yes() -> bool {
    true
}

impl Profiles {
    /// Checks the profile blocks against the rest of the spec.
    pub(crate) fn validate(&self, _spec: &super::Spec, _problems: &mut Vec<super::Problem>) {}
}
