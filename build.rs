//! Embeds silo's Nix library (every file under nix/ and modules/) into the binary, so a
//! workspace always builds with the library of the silo that renders it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    for dir in ["nix", "modules"] {
        println!("cargo:rerun-if-changed={dir}");
        collect(&root.join(dir), &mut files);
    }
    println!("cargo:rerun-if-changed=flake.lock");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("library.rs");
    let mut code =
        String::from("/// silo's Nix library: (path relative to the repository, content).\n");
    code.push_str("pub const LIBRARY: &[(&str, &str)] = &[\n");
    for file in &files {
        let relative = file.strip_prefix(&root).expect("below the manifest dir");
        code.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            relative
                .to_str()
                .expect("UTF-8 file names in nix/ and modules/"),
            file.to_str().expect("UTF-8 path")
        ));
    }
    code.push_str("];\n");
    fs::File::create(&out)
        .and_then(|mut f| f.write_all(code.as_bytes()))
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
