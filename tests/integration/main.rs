// Configuration profiles: Apple-schema oracle, independent parsers, snapshots, catalog errors.
mod profile;
