//! The image fingerprint: a hash of everything an image is built from, recorded on the
//! image as a label, so silo knows an image is outdated without evaluating Nix.

use std::fmt;

/// 64-bit FNV-1a. Not cryptographic: it detects change, it does not resist forgery, and
/// unlike `DefaultHasher` its output is the same for every build of silo.
#[derive(Debug, Clone)]
pub struct Fingerprinter(u64);

impl Fingerprinter {
    pub fn new() -> Self {
        Fingerprinter(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Adds a named part. Name and length are hashed too, so parts cannot run into each
    /// other ("ab" + "c" differs from "a" + "bc").
    pub fn part(&mut self, name: &str, content: &[u8]) -> &mut Self {
        for piece in [name.as_bytes(), content] {
            self.bytes(&(piece.len() as u64).to_le_bytes());
            self.bytes(piece);
        }
        self
    }

    pub fn finish(&self) -> Fingerprint {
        Fingerprint(format!("{:016x}", self.0))
    }
}

/// The hex form stored in the image label `io.silo.fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub String);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(parts: &[(&str, &str)]) -> Fingerprint {
        let mut f = Fingerprinter::new();
        for (name, content) in parts {
            f.part(name, content.as_bytes());
        }
        f.finish()
    }

    #[test]
    fn stable_value() {
        // Pinned: a change here would mark every existing image outdated.
        assert_eq!(of(&[("home.nix", "{ }")]).0, "2f3861ba6eabfd62");
        assert_eq!(of(&[]).0, "cbf29ce484222325");
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        assert_ne!(of(&[("a", "bc")]), of(&[("ab", "c")]));
        assert_ne!(
            of(&[("x", "ab"), ("y", "c")]),
            of(&[("x", "a"), ("y", "bc")])
        );
        assert_ne!(of(&[("x", "1")]), of(&[("x", "2")]));
    }
}
