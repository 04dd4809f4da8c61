//! Flat installer packages (`.pkg`): component packages and product archives.
