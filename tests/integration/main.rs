// Signing: identities, profile CMS and xar TOC signatures, checked with the openssl CLI.
mod sign;
