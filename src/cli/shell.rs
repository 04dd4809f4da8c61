//! Shell integration: completion scripts (clap_complete) and the man page (clap_mangen), both generated
//! from the same argument definitions as `--help`, so they never drift from it.

use std::path::Path;

use anyhow::{Context, Result};

use super::ui::print_stdout;

pub const COMPLETIONS_EXAMPLES: &str = "Examples:
  confine completions bash > /etc/bash_completion.d/confine
  confine completions zsh > \"${fpath[1]}/_confine\"
  confine completions fish > ~/.config/fish/completions/confine.fish
  confine completions powershell >> $PROFILE";

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "confine", &mut script);
    print_stdout(&script)
}

/// `confine(1)` on stdout, or with `out` every page into that folder: `confine.1` and one
/// `confine-<command>.1` per subcommand it refers to (`confine-identity-new.1` too).
pub fn man(out: Option<&Path>) -> Result<()> {
    // `help` is clap's, not a command with a page of its own: leave it out so no page names a missing one.
    let command = super::command().disable_help_subcommand(true);
    if let Some(folder) = out {
        return clap_mangen::generate_to(command, folder)
            .with_context(|| format!("writing the man pages into {}", folder.display()));
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .context("rendering the man page")?;
    print_stdout(&page)
}
