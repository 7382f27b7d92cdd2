//! Validated configuration values: each type can only be built valid, so nothing that
//! reaches podman or Nix needs checking again.

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// The 8-character workspace id, `[a-z0-9]{8}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    const LEN: usize = 8;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == Self::LEN && s.bytes().all(|b| Self::ALPHABET.contains(&b)) {
            Ok(WorkspaceId(s.to_owned()))
        } else {
            Err(format!(
                "the workspace id {s:?} must be 8 characters from a-z and 0-9"
            ))
        }
    }

    /// A fresh random id from the kernel's random source.
    pub fn random() -> std::io::Result<Self> {
        let mut id = String::with_capacity(Self::LEN);
        let mut urandom = std::fs::File::open("/dev/urandom")?;
        let mut byte = [0u8; 1];
        while id.len() < Self::LEN {
            urandom.read_exact(&mut byte)?;
            // Rejection sampling keeps every character equally likely (252 = 7 * 36).
            if byte[0] < 252 {
                id.push(Self::ALPHABET[usize::from(byte[0]) % Self::ALPHABET.len()] as char);
            }
        }
        Ok(WorkspaceId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The container user's name: a portable Unix user name that the image can add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let valid = s.len() <= 32
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            return Err(format!(
                "the user name {s:?} is not a valid Unix user name: use up to 32 characters \
                 from a-z, 0-9, '_' and '-', starting with a letter or '_'"
            ));
        }
        if s == "root" {
            return Err(
                "the user name \"root\" is reserved: the container user is uid 1000".into(),
            );
        }
        Ok(UserName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user's home directory inside the container.
    pub fn home(&self) -> String {
        format!("/home/{}", self.0)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A port forwarding, `[IP:]HOST:CONTAINER[/tcp|/udp]`, as podman's `-p` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub ip: Option<String>,
    pub host: u16,
    pub container: u16,
    pub protocol: Option<Protocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl PortMapping {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "the port mapping {s:?} is invalid ({why}); use HOST:CONTAINER, IP:HOST:CONTAINER, optionally with /tcp or /udp"
            )
        };
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Some(Protocol::Tcp)),
            Some((spec, "udp")) => (spec, Some(Protocol::Udp)),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (s, None),
        };
        // An IPv6 address is written in brackets: [::1]:8080:80.
        let (ip, ports) = if let Some(rest) = spec.strip_prefix('[') {
            let (addr, ports) = rest.split_once("]:").ok_or_else(|| bad("unclosed '['"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in brackets"));
            }
            (Some(format!("[{addr}]")), ports)
        } else {
            match spec.matches(':').count() {
                1 => (None, spec),
                2 => {
                    let (addr, ports) = spec.split_once(':').unwrap_or_default();
                    if addr.parse::<std::net::Ipv4Addr>().is_err() {
                        return Err(bad("not an IPv4 address before the ports"));
                    }
                    (Some(addr.to_owned()), ports)
                }
                _ => return Err(bad("expected two port numbers separated by ':'")),
            }
        };
        let (host, container) = ports.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(bad(&format!("{p:?} is not a port number from 1 to 65535"))),
        };
        Ok(PortMapping {
            ip,
            host: port(host)?,
            container: port(container)?,
            protocol,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}:{}", self.host, self.container)?;
        match self.protocol {
            Some(Protocol::Tcp) => f.write_str("/tcp"),
            Some(Protocol::Udp) => f.write_str("/udp"),
            None => Ok(()),
        }
    }
}

/// Whether a persisted path is a directory (trailing slash) or a single file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Directory,
    File,
}

/// A path persisted on the volume: absolute or `$HOME/...`, no `..`, no characters that
/// podman's `--mount` syntax cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistPath {
    /// As written in the configuration, for messages.
    raw: String,
    under_home: bool,
    /// The path after `/` or `$HOME/`, without leading or trailing slash; may be empty
    /// only for `$HOME`-relative paths (the home itself is not allowed).
    rest: String,
    kind: PathKind,
}

impl PersistPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("the persisted path {s:?} is invalid: {why}");
        let (under_home, rest) = if let Some(rest) = s.strip_prefix("$HOME") {
            if !(rest.is_empty() || rest.starts_with('/')) {
                return Err(bad("after $HOME a '/' must follow"));
            }
            (true, rest)
        } else if s.starts_with('/') {
            (false, s)
        } else {
            return Err(bad("it must be absolute or start with $HOME"));
        };
        if s.chars()
            .any(|c| c.is_control() || c == ',' || c == '"' || c == '$' && !under_home)
        {
            return Err(bad(
                "it must not contain control characters, ',', '\"' or '$' (other than a leading $HOME)",
            ));
        }
        if rest.contains('$') {
            return Err(bad("only a leading $HOME is expanded"));
        }
        let kind = if rest.ends_with('/') {
            PathKind::Directory
        } else {
            PathKind::File
        };
        let rest = rest.trim_matches('/');
        let mut parts = Vec::new();
        for part in rest.split('/') {
            match part {
                ".." => return Err(bad("'..' is not allowed")),
                "" if !rest.is_empty() => return Err(bad("empty path component ('//')")),
                "." => return Err(bad("'.' components are not allowed")),
                "" => {}
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(bad("it names the whole home or root directory"));
        }
        let rest = parts.join("/");
        if !under_home
            && (rest == "silo"
                || rest.starts_with("silo/")
                || rest == "workspace"
                || rest.starts_with("workspace/"))
        {
            return Err(bad("/silo and /workspace are used by silo itself"));
        }
        Ok(PersistPath {
            raw: s.to_owned(),
            under_home,
            rest,
            kind,
        })
    }

    pub fn kind(&self) -> PathKind {
        self.kind
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The absolute path inside the container, `$HOME` expanded to the user's home.
    pub fn container_path(&self, user: &UserName) -> String {
        if self.under_home {
            format!("{}/{}", user.home(), self.rest)
        } else {
            format!("/{}", self.rest)
        }
    }
}

/// `[limits]`: zero or negative means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub cpus: f64,
    pub memory_mb: i64,
    pub processes: i64,
}

/// The inputs of the workspace flake that `[nix.inputs]` may point elsewhere.
pub const FLAKE_INPUTS: [&str; 2] = ["nixpkgs", "home-manager"];

/// A flake reference for `--override-input`, e.g. `path:/src/nixpkgs` or `github:me/hm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeRef(String);

impl FlakeRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the flake reference {s:?} must be non-empty and contain no spaces"
            ));
        }
        // Nix would resolve a relative path against whatever directory it runs in.
        let path = ["path:", "git+file:", "file:"]
            .iter()
            .find_map(|scheme| s.strip_prefix(scheme));
        let relative = match path {
            Some(path) => !path.starts_with('/'),
            None => !s.contains(':') && s.contains('/') && !s.starts_with('/'),
        };
        if relative || s.starts_with('.') {
            return Err(format!(
                "the flake reference {s:?} is a relative path; use an absolute one (path:/abs/dir)"
            ));
        }
        Ok(FlakeRef(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[network].egress`: where the workspace container may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Egress {
    /// Anywhere, as any container on Podman's default network (the default).
    #[default]
    All,
    /// Nowhere: no network at all, not even published ports.
    None,
    /// Only the hosts in `[network].allow`, through silo's proxy.
    Allow,
}

impl Egress {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Egress::All),
            "none" => Ok(Egress::None),
            "allow" => Ok(Egress::Allow),
            _ => Err(format!(
                "egress {s:?} is not one of \"all\", \"none\" or \"allow\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Egress::All => "all",
            Egress::None => "none",
            Egress::Allow => "allow",
        }
    }
}

/// One entry of `[network].allow`: a host name (`crates.io`), all names below a domain
/// (`*.npmjs.org`), an IPv4 address or an IPv4 range (`10.0.0.0/8`). Names are kept in
/// lower case; the proxy compares without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Host(String),
    /// The names below this domain (not the domain itself).
    Subdomains(String),
    /// An address is a range of prefix 32.
    Range(std::net::Ipv4Addr, u8),
}

impl AllowEntry {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("the allowed host {s:?} is invalid: {why}");
        if s.contains("://") {
            return Err(bad("write the host name alone, without a scheme or path"));
        }
        if s.contains(':') {
            return Err(bad(
                "IPv6 addresses and ports are not supported; name the host (every port of an allowed host is open)",
            ));
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        if addr.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let octets: Vec<&str> = addr.split('.').collect();
            let canonical = octets.len() == 4
                && octets
                    .iter()
                    .all(|o| !o.is_empty() && (o.len() == 1 || !o.starts_with('0')));
            let ip = addr
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .filter(|_| canonical)
                .ok_or_else(|| bad("not an IPv4 address in the form 10.1.2.3"))?;
            let prefix = match prefix {
                None => 32,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|n| *n <= 32 && n.to_string() == p)
                    .ok_or_else(|| bad("the prefix length after '/' must be 0 to 32"))?,
            };
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            if u32::from(ip) & !mask != 0 {
                return Err(bad(&format!(
                    "{ip} has bits set outside the /{prefix} prefix; write the range's first address"
                )));
            }
            return Ok(AllowEntry::Range(ip, prefix));
        }
        if prefix.is_some() {
            return Err(bad("only IPv4 ranges take a '/' prefix length"));
        }
        let (wildcard, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let name = name.to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(bad(
                "use a host name of letters, digits, '-' and '_' between dots, optionally starting with '*.', or an IPv4 address or range",
            ));
        }
        Ok(if wildcard {
            AllowEntry::Subdomains(name)
        } else {
            AllowEntry::Host(name)
        })
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Host(name) => f.write_str(name),
            AllowEntry::Subdomains(name) => write!(f, "*.{name}"),
            AllowEntry::Range(ip, 32) => write!(f, "{ip}"),
            AllowEntry::Range(ip, prefix) => write!(f, "{ip}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_ids() {
        assert!(WorkspaceId::parse("ab3f9c12").is_ok());
        for bad in [
            "ab3f9c1",
            "ab3f9c123",
            "AB3F9C12",
            "ab3f-c12",
            "ab3f9c1é",
            "",
        ] {
            assert!(WorkspaceId::parse(bad).is_err(), "{bad} accepted");
        }
        let id = WorkspaceId::random().unwrap();
        assert!(WorkspaceId::parse(id.as_str()).is_ok());
        assert_ne!(id, WorkspaceId::random().unwrap());
    }

    #[test]
    fn user_names() {
        for good in ["alice", "_svc", "a-b_c9", "x"] {
            assert!(UserName::parse(good).is_ok(), "{good} rejected");
        }
        for bad in [
            "",
            "Alice",
            "9lives",
            "-x",
            "a b",
            "a.b",
            "root",
            &"a".repeat(33),
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(UserName::parse("alice").unwrap().home(), "/home/alice");
    }

    #[test]
    fn port_mappings_round_trip() {
        for s in [
            "8080:8080",
            "127.0.0.1:8080:80",
            "53:53/udp",
            "[::1]:8443:443/tcp",
            "1:65535",
        ] {
            assert_eq!(PortMapping::parse(s).unwrap().to_string(), s);
        }
        let p = PortMapping::parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            (p.host, p.container, p.protocol),
            (8080, 80, Some(Protocol::Udp))
        );
    }

    #[test]
    fn port_mappings_rejected() {
        for bad in [
            "8080",
            "0:80",
            "80:0",
            "65536:80",
            "80:80/sctp",
            "a:80",
            "1.2.3:80:80",
            "+80:80",
            "80:80:80:80",
            "[::1:80:80",
            "[zz]:80:80",
            "localhost:80:80",
            "",
        ] {
            assert!(PortMapping::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn persist_paths() {
        let user = UserName::parse("alice").unwrap();
        let p = PersistPath::parse("$HOME/.cache/uv/").unwrap();
        assert_eq!(p.kind(), PathKind::Directory);
        assert_eq!(p.container_path(&user), "/home/alice/.cache/uv");
        let p = PersistPath::parse("$HOME/.local/share/fish/fish_history").unwrap();
        assert_eq!(p.kind(), PathKind::File);
        assert_eq!(
            p.container_path(&user),
            "/home/alice/.local/share/fish/fish_history"
        );
        let p = PersistPath::parse("/data").unwrap();
        assert_eq!(
            (p.kind(), p.container_path(&user)),
            (PathKind::File, "/data".to_owned())
        );
    }

    #[test]
    fn persist_paths_rejected() {
        for bad in [
            "relative/path",
            "~/x",
            "$HOMEX/y",
            "$HOME",
            "$HOME/",
            "/",
            "/a/../b",
            "$HOME/..",
            "/a//b",
            "/a/./b",
            "/a,b",
            "/a\nb",
            "/$USER/x",
            "$HOME/$X",
            "/silo/persistence/x",
            "/workspace/",
            "",
        ] {
            assert!(PersistPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flake_refs() {
        for good in [
            "path:/src/nixpkgs",
            "github:me/home-manager",
            "/abs/dir",
            "git+https://x/y.git?ref=main",
            "nixpkgs",
        ] {
            assert!(FlakeRef::parse(good).is_ok(), "{good} rejected");
        }
        for bad in ["", "path:./x", "./x", "path:../x", "src/nixpkgs", "a b"] {
            assert!(FlakeRef::parse(bad).is_err(), "{bad} accepted");
        }
    }
    #[test]
    fn egress_values() {
        for (s, e) in [
            ("all", Egress::All),
            ("none", Egress::None),
            ("allow", Egress::Allow),
        ] {
            assert_eq!(Egress::parse(s), Ok(e));
            assert_eq!(e.as_str(), s);
        }
        assert!(Egress::parse("All").is_err());
        assert!(Egress::parse("").is_err());
    }

    #[test]
    fn allow_entries() {
        for (s, shown) in [
            ("crates.io", "crates.io"),
            ("Crates.IO", "crates.io"),
            ("*.npmjs.org", "*.npmjs.org"),
            ("localhost", "localhost"),
            ("my_host-1", "my_host-1"),
            ("10.1.2.3", "10.1.2.3"),
            ("10.1.2.3/32", "10.1.2.3"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("192.168.4.128/25", "192.168.4.128/25"),
        ] {
            assert_eq!(AllowEntry::parse(s).unwrap().to_string(), shown, "{s}");
        }
        assert_eq!(
            AllowEntry::parse("*.npmjs.org"),
            Ok(AllowEntry::Subdomains("npmjs.org".into()))
        );
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            ".a",
            "a.",
            "a*.b",
            "*.*.b",
            "a b",
            "a/b",
            "https://crates.io",
            "crates.io:443",
            "::1",
            "2001:db8::/32",
            "10.1.2",
            "10.1.2.3.4",
            "10.01.2.3",
            "256.1.2.3",
            "10.1.2.3/33",
            "10.1.2.3/-1",
            "10.1.2.3/08",
            "10.1.2.3/24",
            "10.0.0.0/",
            &"a".repeat(64),
        ] {
            assert!(AllowEntry::parse(bad).is_err(), "{bad:?} accepted");
        }
        let msg = AllowEntry::parse("10.1.2.3/24").unwrap_err();
        assert!(msg.contains("write the range's first address"), "{msg}");
    }
}
