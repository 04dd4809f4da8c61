// Flat packages: writer output checked by independent readers, inspect and verify.
mod pkg;
