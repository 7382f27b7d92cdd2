//! The allow-list proxy's configuration: tinyproxy's config file, its filter (one
//! extended regular expression per allowed entry), and the texts of its error pages.
//!
//! tinyproxy matches the filter against the host name of each request (CONNECT's
//! target, an absolute URL's host, the Host header), case-insensitively, before it
//! resolves anything; with `FilterDefaultDeny` whatever matches no line is refused with
//! `403 Filtered` and `denied.txt`. It knows no address ranges, so an IPv4 range
//! becomes a pattern of the addresses written in it.

use std::net::Ipv4Addr;

use crate::config::values::AllowEntry;

/// Where the proxy container sees its configuration directory (read-only).
pub const CONFIG_TARGET: &str = "/etc/silo-proxy";
/// The port the proxy listens on, in the workspace network.
pub const PORT: u16 = 3128;

/// The files of the proxy's configuration directory: (name, content).
pub fn files(listen: Ipv4Addr, subnet: &str, allow: &[AllowEntry]) -> Vec<(&'static str, String)> {
    vec![
        ("tinyproxy.conf", tinyproxy_conf(listen, subnet)),
        ("allow.ere", filter(allow)),
        ("denied.txt", DENIED.to_owned()),
        ("error.txt", ERROR.to_owned()),
    ]
}

/// Only the workspace network may use the proxy, and only through its address there.
fn tinyproxy_conf(listen: Ipv4Addr, subnet: &str) -> String {
    format!(
        "# Rendered by silo from [network] egress = \"allow\"; silo rewrites it.
Port {PORT}
Listen {listen}
Allow {subnet}
Timeout 600
MaxClients 100
DisableViaHeader Yes
Filter \"{CONFIG_TARGET}/allow.ere\"
FilterType ere
FilterDefaultDeny Yes
ErrorFile 403 \"{CONFIG_TARGET}/denied.txt\"
DefaultErrorFile \"{CONFIG_TARGET}/error.txt\"
LogLevel Notice
"
    )
}

/// What a refused client reads (tinyproxy fills in `{url}`: `host:port` for CONNECT).
const DENIED: &str = "silo: {url} is not allowed by this workspace's network policy.
To allow it, add its host name to `allow` under [network] in .silo/silo.toml (with egress = \"allow\"), then run `silo stop && silo`.
";

const ERROR: &str = "silo proxy: {cause}: {detail} ({url})\n";

/// The filter file: one anchored pattern per entry. An empty list matches nothing.
pub fn filter(allow: &[AllowEntry]) -> String {
    let mut out = String::from("# Rendered by silo from [network].allow; one pattern per entry.\n");
    for entry in allow {
        out += &pattern(entry);
        out.push('\n');
    }
    out
}

/// The pattern of one entry. Host names hold only letters, digits, `-`, `_` and dots
/// (`AllowEntry` checks), so escaping the dots is all the quoting they need.
pub fn pattern(entry: &AllowEntry) -> String {
    match entry {
        AllowEntry::Host(name) => format!("^{}$", name.replace('.', "\\.")),
        AllowEntry::Subdomains(name) => {
            format!("^([a-z0-9_-]+\\.)+{}$", name.replace('.', "\\."))
        }
        AllowEntry::Range(ip, prefix) => range_pattern(*ip, *prefix),
    }
}

/// The dotted-decimal addresses of `ip/prefix` (no leading zeros, as addresses are
/// written): fixed octets literally, the partial octet as a range, the rest as any octet.
fn range_pattern(ip: Ipv4Addr, prefix: u8) -> String {
    let octets = ip.octets();
    let fixed = usize::from(prefix / 8);
    let parts: Vec<String> = (0..4)
        .map(|i| {
            let o = u32::from(octets[i]);
            if i < fixed {
                o.to_string()
            } else if i == fixed {
                let free = 8 - u32::from(prefix % 8);
                number_pattern(o, o + (1 << free) - 1)
            } else {
                number_pattern(0, 255)
            }
        })
        .collect();
    format!("^{}$", parts.join("\\."))
}

/// One digit position: the digits from the first to the second.
type DigitRange = (u8, u8);

/// An ERE for the decimal numbers `lo..=hi` (0 to 255, no leading zeros).
fn number_pattern(lo: u32, hi: u32) -> String {
    let alternatives: Vec<String> = number_ranges(lo, hi)
        .iter()
        .map(|seq| {
            seq.iter()
                .map(|&(a, b)| match (a, b) {
                    (a, b) if a == b => a.to_string(),
                    (a, b) => format!("[{a}-{b}]"),
                })
                .collect()
        })
        .collect();
    if alternatives.len() == 1 {
        alternatives[0].clone()
    } else {
        format!("({})", alternatives.join("|"))
    }
}

/// `lo..=hi` as sequences of digit ranges, each sequence one length of number.
fn number_ranges(lo: u32, hi: u32) -> Vec<Vec<DigitRange>> {
    let mut out = Vec::new();
    for (min, max) in [(0, 9), (10, 99), (100, 999)] {
        let (a, b) = (lo.max(min), hi.min(max));
        if a <= b {
            out.extend(same_length(&digits(a), &digits(b)));
        }
    }
    out
}

fn digits(n: u32) -> Vec<u8> {
    n.to_string().bytes().map(|b| b - b'0').collect()
}

/// Numbers from `lo` to `hi`, both written with the same number of digits.
fn same_length(lo: &[u8], hi: &[u8]) -> Vec<Vec<DigitRange>> {
    let prefixed = |d: u8, rest: Vec<Vec<DigitRange>>| -> Vec<Vec<DigitRange>> {
        rest.into_iter()
            .map(|mut seq| {
                seq.insert(0, (d, d));
                seq
            })
            .collect()
    };
    if lo.len() == 1 {
        return vec![vec![(lo[0], hi[0])]];
    }
    if lo[0] == hi[0] {
        return prefixed(lo[0], same_length(&lo[1..], &hi[1..]));
    }
    let n = lo.len() - 1;
    let mut out = Vec::new();
    let (mut first, mut last) = (lo[0], hi[0]);
    if lo[1..].iter().any(|d| *d != 0) {
        out.extend(prefixed(lo[0], same_length(&lo[1..], &vec![9; n])));
        first += 1;
    }
    let mut tail = Vec::new();
    if hi[1..].iter().any(|d| *d != 9) {
        tail = prefixed(hi[0], same_length(&vec![0; n], &hi[1..]));
        last -= 1;
    }
    if first <= last {
        let mut seq = vec![(first, last)];
        seq.extend(std::iter::repeat_n((0, 9), n));
        out.push(seq);
    }
    out.extend(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> AllowEntry {
        AllowEntry::parse(s).unwrap()
    }

    /// Whether one of the sequences matches the decimal number `n`.
    fn matches(seqs: &[Vec<DigitRange>], n: u32) -> usize {
        let d = digits(n);
        seqs.iter()
            .filter(|seq| {
                seq.len() == d.len() && seq.iter().zip(&d).all(|(&(a, b), &x)| a <= x && x <= b)
            })
            .count()
    }

    #[test]
    fn number_ranges_match_exactly_their_numbers() {
        for lo in 0..=255 {
            for hi in lo..=255 {
                let seqs = number_ranges(lo, hi);
                for n in 0..=255 {
                    let expected = usize::from((lo..=hi).contains(&n));
                    assert_eq!(matches(&seqs, n), expected, "{lo}..={hi} and {n}: {seqs:?}");
                }
            }
        }
    }

    #[test]
    fn number_patterns() {
        assert_eq!(number_pattern(7, 7), "7");
        assert_eq!(number_pattern(0, 9), "[0-9]");
        assert_eq!(
            number_pattern(128, 255),
            "(12[8-9]|1[3-9][0-9]|2[0-4][0-9]|25[0-5])"
        );
        assert_eq!(
            number_pattern(0, 255),
            "([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])"
        );
        assert_eq!(
            number_pattern(64, 127),
            "(6[4-9]|[7-9][0-9]|1[0-1][0-9]|12[0-7])"
        );
    }

    #[test]
    fn patterns_of_entries() {
        assert_eq!(pattern(&entry("crates.io")), r"^crates\.io$");
        assert_eq!(pattern(&entry("localhost")), r"^localhost$");
        assert_eq!(
            pattern(&entry("*.npmjs.org")),
            r"^([a-z0-9_-]+\.)+npmjs\.org$"
        );
        assert_eq!(pattern(&entry("10.1.2.3")), r"^10\.1\.2\.3$");
        assert_eq!(
            pattern(&entry("10.89.202.128/25")),
            r"^10\.89\.202\.(12[8-9]|1[3-9][0-9]|2[0-4][0-9]|25[0-5])$"
        );
        let any = "([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])";
        assert_eq!(
            pattern(&entry("10.0.0.0/8")),
            format!(r"^10\.{any}\.{any}\.{any}$")
        );
        assert_eq!(
            pattern(&entry("172.16.0.0/12")),
            format!(r"^172\.(1[6-9]|2[0-9]|3[0-1])\.{any}\.{any}$")
        );
        // tinyproxy reads at most 511 characters of a filter line.
        assert!(pattern(&entry("0.0.0.0/0")).len() < 256);
    }

    #[test]
    fn filter_file() {
        assert_eq!(
            filter(&[entry("crates.io"), entry("10.0.0.1")]),
            "# Rendered by silo from [network].allow; one pattern per entry.\n^crates\\.io$\n^10\\.0\\.0\\.1$\n"
        );
        // Nothing allowed: no pattern, and FilterDefaultDeny refuses everything.
        assert_eq!(filter(&[]).lines().count(), 1);
    }

    #[test]
    fn config_files() {
        let files = files(
            Ipv4Addr::new(10, 89, 3, 2),
            "10.89.3.0/24",
            &[entry("a.org")],
        );
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["tinyproxy.conf", "allow.ere", "denied.txt", "error.txt"]
        );
        assert_eq!(
            files[0].1,
            "# Rendered by silo from [network] egress = \"allow\"; silo rewrites it.
Port 3128
Listen 10.89.3.2
Allow 10.89.3.0/24
Timeout 600
MaxClients 100
DisableViaHeader Yes
Filter \"/etc/silo-proxy/allow.ere\"
FilterType ere
FilterDefaultDeny Yes
ErrorFile 403 \"/etc/silo-proxy/denied.txt\"
DefaultErrorFile \"/etc/silo-proxy/error.txt\"
LogLevel Notice
"
        );
        assert!(files[2].1.contains("{url} is not allowed"));
        assert!(
            files[2]
                .1
                .contains("`allow` under [network] in .silo/silo.toml")
        );
    }
}
