// The installer scripts run as root against a simulated macOS (tests/macos-sim).
mod installer;
