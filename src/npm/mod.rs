//! OpenClaw vendored from npm: the lockfile `confine lock` writes, the integrity-keyed tarball cache,
//! and the `node_modules` tree laid out from the verified tarballs for the package's payload.
//!
//! npm itself resolves (`npm install --package-lock-only`) and downloads (`npm pack`): it already knows
//! semver, peer and optional dependencies, hoisting, `.npmrc` registries, proxies and auth, and the
//! admin's CI already trusts it. confine owns the rest: the lockfile format a reviewer diffs, the sha512
//! check of every tarball byte, the cache, and the layout (no lifecycle scripts, ever).
//!
//! Not supported: git, file and link dependencies (OpenClaw has none), `node_modules/.bin` links
//! (nothing at run time uses them: the daemon runs `node <entry>`).

mod cache;
mod lock;
mod tree;

pub use cache::{Cache, Integrity};
pub use lock::{LockedPackage, Lockfile, Platform, lock_path, resolve};
pub use tree::{Bundle, Vendored, platforms, vendor};
