//! Shell integration: completion scripts (clap_complete) and the man page (clap_mangen), both generated
//! from the same argument definitions as `--help`, so they never drift from it.

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

/// `confine(1)`: synopsis, options, the subcommands and the version.
pub fn man() -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(super::command())
        .render(&mut page)
        .context("rendering the man page")?;
    print_stdout(&page)
}
