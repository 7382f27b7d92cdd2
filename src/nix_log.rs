//! What silo shows of `nix build`'s stderr: the workspace flake's store paths named as
//! the files the user edits, Nix's `--show-trace` advice turned into silo's flag, and the
//! noise silo can explain left out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::safe_fs::Dir;

/// Nix copies a `path:` flake to `<store>/<hash>-source`; errors name that copy.
const STORE: &str = "/nix/store/";
const HASH_LEN: usize = 32;
const SOURCE: &str = "-source/";

/// Where the workspace flake's files came from, to recognise its copy in the store.
#[derive(Debug)]
pub struct Sources {
    /// `.silo` as the user should read it (see `shown_silo_dir`).
    silo_dir: PathBuf,
    /// The user's own `home.user.nix`, of which `.silo/home.user.nix` is a copy.
    home_user_nix: PathBuf,
    /// The rendered `settings.json`: only the workspace's copy holds exactly this.
    settings: String,
    store: PathBuf,
    /// Store directory name -> whether it is the workspace's copy.
    verdicts: HashMap<String, bool>,
}

impl Sources {
    pub fn new(silo_dir: PathBuf, home_user_nix: PathBuf, settings: String) -> Sources {
        Sources {
            silo_dir,
            home_user_nix,
            settings,
            store: PathBuf::from(STORE),
            verdicts: HashMap::new(),
        }
    }

    /// The store is this directory of the host, not `/nix/store`: the Nix runner's store
    /// volume, where its Nix copies the flake.
    pub fn in_store(mut self, store: PathBuf) -> Sources {
        self.store = store;
        self
    }

    /// Whether `<store>/<dir>` is the copy of this workspace's flake. A copy of nixpkgs or
    /// home-manager never holds the same settings.json (id, user and fingerprint). Read
    /// without following links: a store volume holds what builds wrote.
    fn is_workspace(&mut self, dir: &str) -> bool {
        let store = &self.store;
        let settings = &self.settings;
        *self.verdicts.entry(dir.to_owned()).or_insert_with(|| {
            let text = Dir::open_optional(store)
                .ok()
                .flatten()
                .and_then(|store| store.subdir(dir).ok().flatten())
                .and_then(|copy| copy.read("settings.json").ok().flatten());
            text.is_some_and(|s| s == *settings)
        })
    }

    /// The line with each path into the workspace's store copy replaced by the user's file.
    pub fn rewrite(&mut self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(at) = rest.find(STORE) {
            out.push_str(&rest[..at]);
            let path = &rest[at..];
            match self.replacement(path) {
                Some((len, replaced)) => {
                    out.push_str(&replaced);
                    rest = &path[len..];
                }
                None => {
                    out.push_str(STORE);
                    rest = &path[STORE.len()..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// For a text starting with a store path of the workspace copy: how many bytes the
    /// path takes and what the user should read instead.
    fn replacement(&mut self, text: &str) -> Option<(usize, String)> {
        let name = &text[STORE.len()..];
        let hash = name.get(..HASH_LEN)?;
        if !hash.bytes().all(|b| b.is_ascii_alphanumeric()) || !name[HASH_LEN..].starts_with(SOURCE)
        {
            return None;
        }
        let relative_start = HASH_LEN + SOURCE.len();
        let relative_len = name[relative_start..]
            .find(|c: char| c.is_whitespace() || "'\"`:,()«»".contains(c))
            .unwrap_or(name.len() - relative_start);
        let relative = &name[relative_start..relative_start + relative_len];
        if relative.is_empty() || !self.is_workspace(&name[..relative_start - 1]) {
            return None;
        }
        let file = if relative == "home.user.nix" {
            self.home_user_nix.clone()
        } else {
            self.silo_dir.join(relative)
        };
        Some((
            STORE.len() + relative_start + relative_len,
            file.display().to_string(),
        ))
    }
}

/// `.silo` as a path to show: `.silo` from the workspace root, absolute elsewhere.
pub fn shown_silo_dir(silo_dir: &Path, subdir: &Path) -> PathBuf {
    if subdir.as_os_str().is_empty() {
        PathBuf::from(".silo")
    } else {
        silo_dir.to_path_buf()
    }
}

/// A line filter for `nix build`'s stderr.
#[derive(Debug)]
pub struct Filter {
    sources: Sources,
    /// `[nix.inputs]` is set: Nix's warning that it does not write the lock file it
    /// would have changed is expected, silo says so in the README.
    overridden_inputs: bool,
    /// `--verbose`: leave nothing out.
    verbose: bool,
    skipping: Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The lines of "warning: not writing modified lock file" that list the inputs.
    LockChanges,
    /// The store paths under "these 3923 derivations will be built:".
    PathList,
}

impl Filter {
    pub fn new(sources: Sources, overridden_inputs: bool, verbose: bool) -> Filter {
        Filter {
            sources,
            overridden_inputs,
            verbose,
            skipping: Skip::Nothing,
        }
    }

    /// The line as silo shows it, or None to leave it out.
    pub fn line(&mut self, line: &str) -> Option<String> {
        let continues = match self.skipping {
            Skip::LockChanges => line.starts_with("• ") || line.starts_with(' '),
            Skip::PathList => line.starts_with("  /"),
            Skip::Nothing => false,
        };
        if continues {
            return None;
        }
        self.skipping = Skip::Nothing;
        if !self.verbose {
            if self.overridden_inputs
                && line.starts_with("warning: not writing modified lock file of flake")
            {
                self.skipping = Skip::LockChanges;
                return None;
            }
            if (line.starts_with("these ") || line.starts_with("this "))
                && (line.contains(" will be built") || line.contains(" will be fetched"))
            {
                self.skipping = Skip::PathList;
                return Some(format!(
                    "{} (`silo -v build` lists them)",
                    line.trim_end_matches(':')
                ));
            }
        }
        let line = line.replace("use '--show-trace'", "run `silo build --show-trace`");
        Some(self.sources.rewrite(&line))
    }
}

/// The messages of Nix's `error:` lines, last first, each with its continuation lines;
/// never the trace (`… while evaluating`) or the source excerpts around them.
pub fn error_messages(stderr: &str) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in stderr.lines() {
        let text = line.trim();
        if text.starts_with("error:") {
            messages.extend(current.take());
            current = Some(text.to_owned());
        } else if text.is_empty()
            || text.starts_with('…')
            || text.starts_with("at ")
            || text.split_once('|').is_some_and(|(n, _)| {
                n.trim().is_empty() || n.trim().bytes().all(|b| b.is_ascii_digit())
            })
        {
            messages.extend(current.take());
        } else if let Some(message) = current.as_mut() {
            message.push('\n');
            message.push_str(text);
        }
    }
    messages.extend(current);
    messages.reverse();
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "i379lrq50kfvms47k8gi8zhgydilzr29";
    const NIXPKGS: &str = "qybx7lcx7dx4pmbdxi02ffrnnkax42rq";
    const SETTINGS: &str = "{\"id\": \"ab3f9c12\"}\n";

    /// Sources whose store holds the workspace's copy and a nixpkgs copy.
    fn sources(store: &Path) -> Sources {
        for (hash, settings) in [(HASH, SETTINGS), (NIXPKGS, "{}")] {
            let dir = store.join(format!("{hash}-source"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("settings.json"), settings).unwrap();
        }
        Sources::new(
            PathBuf::from(".silo"),
            PathBuf::from("/home/u/.config/silo/home.user.nix"),
            SETTINGS.to_owned(),
        )
        .in_store(store.to_path_buf())
    }

    #[test]
    fn a_link_in_the_store_is_not_followed() {
        // A store volume holds what builds wrote: a settings.json that is a link (to a
        // file that would match) does not make a directory the workspace's copy.
        let store = tempfile::tempdir().unwrap();
        let mut s = sources(store.path());
        let planted = store.path().join(format!("{NIXPKGS}-source/settings.json"));
        std::fs::remove_file(&planted).unwrap();
        let real = store.path().join(format!("{HASH}-source/settings.json"));
        std::os::unix::fs::symlink(&real, &planted).unwrap();
        let line = format!("       at /nix/store/{NIXPKGS}-source/home.nix:6:21:");
        assert_eq!(s.rewrite(&line), line);
    }

    #[test]
    fn paths_into_the_workspace_copy_name_the_users_files() {
        let store = tempfile::tempdir().unwrap();
        let mut s = sources(store.path());
        // Lines captured from Nix 2.26 with nixpkgs 25.05.
        let cases = [
            (
                format!("       at /nix/store/{HASH}-source/home.nix:6:21:"),
                "       at .silo/home.nix:6:21:",
            ),
            (
                format!("       - In `/nix/store/{HASH}-source/home.user.nix': 42"),
                "       - In `/home/u/.config/silo/home.user.nix': 42",
            ),
            (
                format!(
                    "       … while evaluating the module argument `pkgs' in \"/nix/store/{HASH}-source/lib/modules/lean.nix\":"
                ),
                "       … while evaluating the module argument `pkgs' in \".silo/lib/modules/lean.nix\":",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(s.rewrite(&line), expected);
        }
        // nixpkgs' copy, a bare store directory and other store paths stay as they are.
        for line in [
            format!("         at /nix/store/{NIXPKGS}-source/pkgs/stdenv/generic/make-derivation.nix:480:13"),
            format!("copying /nix/store/{HASH}-source to the store"),
            "error: 1 dependencies of derivation '/nix/store/cp6mv2dk76769pkx601dnc831r6jjnry-silo-4tavscb7.tar.drv' failed to build".to_owned(),
            "/nix/store/".to_owned(),
        ] {
            assert_eq!(s.rewrite(&line), line);
        }
    }

    #[test]
    fn shown_silo_dir_is_relative_at_the_workspace_root() {
        let dir = Path::new("/p/.silo");
        assert_eq!(shown_silo_dir(dir, Path::new("")), Path::new(".silo"));
        assert_eq!(shown_silo_dir(dir, Path::new("src")), dir);
    }

    fn filtered(filter: &mut Filter, text: &str) -> String {
        text.lines()
            .filter_map(|l| filter.line(l))
            .map(|l| l + "\n")
            .collect()
    }

    /// Captured from Nix 2.26 (tarball inputs) and Nix 2.8 (path inputs, a removed input).
    const LOCK_WARNINGS: &str = "\
warning: not writing modified lock file of flake 'path:/p/.silo':
• Updated input 'home-manager':
    'github:nix-community/home-manager/c53d643b3737e2fcd04e6cb3b3580ef50b2087a0?narHash=sha256-djoRr6jBpe35q/0JwAvXpFXg1Ktf%2BX54NU2RLR7wnHw%3D' (2026-08-19)
  → 'file:///v/home-manager-25.05.tar.xz?narHash=sha256-WHkdBlw6oyxXIra/vQPYLtqY%2B3G8dUVZM8bEXk0t8x4%3D' (2026-11-28)
• Updated input 'nixpkgs':
    'github:NixOS/nixpkgs/ffb3c9b700e759be2ef13237c9d8f953b32a1e46?narHash=sha256-RD2kNWCG%2BBjo6h%2BJVjWVNntZs2GtRoeY2xHjts/FNkA%3D' (2026-08-19)
  → 'file:///v/nixpkgs-25.05.tar.xz?narHash=sha256-WS332uiBjGxkH1qpyCgTeT9j0FVbnWwBXcGdIyoByO0%3D' (2026-11-28)
warning: not writing modified lock file of flake 'path:/p/.silo':
• Updated input 'home-manager':
    'github:nix-community/home-manager/c53d643b3737e2fcd04e6cb3b3580ef50b2087a0' (2026-08-19)
  → 'path:/f/home-manager?lastModified=1795900048&narHash=sha256-R%2f4FbGerwUQSr6dYDY9LP2KTul1sqSbQivRRxhPLm9k=' (2026-11-28)
• Removed input 'home-manager/nixpkgs'
error: syntax error, unexpected '(', expecting ID or OR_KW or DOLLAR_CURLY or '\"'
";

    #[test]
    fn the_lock_warning_is_left_out_when_inputs_are_overridden() {
        let store = tempfile::tempdir().unwrap();
        let mut quiet = Filter::new(sources(store.path()), true, false);
        assert_eq!(
            filtered(&mut quiet, LOCK_WARNINGS),
            "error: syntax error, unexpected '(', expecting ID or OR_KW or DOLLAR_CURLY or '\"'\n"
        );
        // Without overrides silo cannot explain it; with --verbose everything is shown.
        for (overridden, verbose) in [(false, false), (true, true)] {
            let mut filter = Filter::new(sources(store.path()), overridden, verbose);
            assert_eq!(filtered(&mut filter, LOCK_WARNINGS), LOCK_WARNINGS);
        }
    }

    #[test]
    fn lists_of_store_paths_are_counted_not_listed() {
        let store = tempfile::tempdir().unwrap();
        let mut filter = Filter::new(sources(store.path()), false, false);
        let out = "\
these 3923 derivations will be built:
  /nix/store/0m4y3j4pnivlhhpr5yqdvlly86p93fwc-busybox.drv
  /nix/store/xjkydxc0n24mwxp8kh4wn5jq0fppga9k-bootstrap-tools.tar.xz.drv
these 2 paths will be fetched (1.20 MiB download, 5.10 MiB unpacked):
  /nix/store/5jrd75v747s76s16zxk59384xfcjqn58-bash-5.2.tar.gz
  /nix/store/z4x4wa4ahsc6xn40j847dsrnagxd41w0-gmp-6.3.0.tar.bz2
building '/nix/store/5jrd75v747s76s16zxk59384xfcjqn58-bash-5.2.tar.gz.drv'...
";
        assert_eq!(
            filtered(&mut filter, out),
            "\
these 3923 derivations will be built (`silo -v build` lists them)
these 2 paths will be fetched (1.20 MiB download, 5.10 MiB unpacked) (`silo -v build` lists them)
building '/nix/store/5jrd75v747s76s16zxk59384xfcjqn58-bash-5.2.tar.gz.drv'...
"
        );
    }

    #[test]
    fn nix_s_show_trace_advice_names_silo_s_flag() {
        let store = tempfile::tempdir().unwrap();
        let mut filter = Filter::new(sources(store.path()), false, false);
        // Nix 2.26, then Nix 2.8.
        assert_eq!(
            filter.line("       (stack trace truncated; use '--show-trace' to show the full, detailed trace)").unwrap(),
            "       (stack trace truncated; run `silo build --show-trace` to show the full, detailed trace)"
        );
        assert_eq!(
            filter
                .line("(use '--show-trace' to show detailed location information)")
                .unwrap(),
            "(run `silo build --show-trace` to show detailed location information)"
        );
    }

    /// The end of a failed evaluation, captured from Nix 2.26 with nixpkgs 25.05.
    const STATE_VERSION: &str = "error:
       … while evaluating the module argument `pkgs' in \"/nix/store/y3s3hn0rcpkidimi3nrfw7icwl8fc6ay-source/modules/services/mako.nix\":

       … while evaluating the option `home.stateVersion':

       (stack trace truncated; use '--show-trace' to show the full, detailed trace)

       error: A definition for option `home.stateVersion' is not of type `one of \"24.11\", \"25.05\"'. Definition values:
       - In `/nix/store/g2g79pf4abbj9cn310ha8f10v5ap90cc-source/home.nix': \"25.11\"
";

    #[test]
    fn error_messages_leave_out_the_trace() {
        assert_eq!(
            error_messages(STATE_VERSION),
            [
                "error: A definition for option `home.stateVersion' is not of type `one of \"24.11\", \"25.05\"'. Definition values:\n- In `/nix/store/g2g79pf4abbj9cn310ha8f10v5ap90cc-source/home.nix': \"25.11\"",
                "error:"
            ]
        );
        // Nix 2.26's build failures: the builder's log is part of its message.
        let build = "\
warning: error: unable to download 'https://ftpmirror.gnu.org/bash/bash-5.2.tar.gz': Could not resolve hostname (6) Could not resolve host: ftpmirror.gnu.org; retrying in 321 ms
error: builder for '/nix/store/5jrd-bash-5.2.tar.gz.drv' failed with exit code 1;
       last 4 log lines:
       > error:
       >        … writing file '/nix/store/v28d-bash-5.2.tar.gz'
       >
       >        error: unable to download 'https://ftpmirror.gnu.org/bash/bash-5.2.tar.gz': Could not resolve hostname (6) Could not resolve host: ftpmirror.gnu.org
       For full logs, run:
         nix log /nix/store/5jrd-bash-5.2.tar.gz.drv
error: 1 dependencies of derivation '/nix/store/cp6m-silo-4tavscb7.tar.drv' failed to build
";
        let messages = error_messages(build);
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0],
            "error: 1 dependencies of derivation '/nix/store/cp6m-silo-4tavscb7.tar.drv' failed to build"
        );
        assert!(
            messages[1].contains("Could not resolve host"),
            "{messages:?}"
        );
        // Nix 2.8: the message first, then where.
        let old = "error: attribute 'foo' missing\n\n       at /nix/store/x-source/home.nix:3:5:\n\n            2|\n            3|   x = foo;\n";
        assert_eq!(error_messages(old), ["error: attribute 'foo' missing"]);
    }
}
