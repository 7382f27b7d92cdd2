//! The network proxy's image (`#proxy`, nix/proxy.nix) as the real dockerTools gets it:
//! tinyproxy and socat from nixpkgs, nobody's accounts, the entrypoint and labels silo
//! relies on.

use std::path::Path;

use crate::drv::Drvs;

/// Checks the proxy image derivation of the workspace `id` in `dir`.
pub fn check_proxy(drvs: &Drvs, id: &str, dir: &Path) {
    let image = drvs.root_named(&format!("silo-{id}-proxy.tar"));
    assert!(
        drvs.env(image, "buildCommand").ends_with("| cat > $out"),
        "{}",
        drvs.env(image, "buildCommand")
    );
    let conf = drvs.find(image, "the image configuration", |n| {
        n == format!("silo-{id}-proxy-conf.json")
    });
    assert_eq!(
        drvs.env(conf, "imageName"),
        format!("localhost/silo-{id}-proxy")
    );
    for (what, prefix) in [
        ("tinyproxy", "tinyproxy-1.11."),
        ("socat", "socat-"),
        ("the accounts", "fake-nss"),
        ("the forwarder", "silo-forward"),
    ] {
        // The package, not its sources.
        drvs.find(image, what, |n| {
            n.starts_with(prefix) && !n.contains(".tar")
        });
    }
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".silo/settings.json")).expect("settings.json"),
    )
    .unwrap();
    let config = drvs.find(image, "the image config", |n| {
        n == format!("silo-{id}-proxy-base.json")
    });
    let text = drvs.env(config, "text");
    let tinyproxy = drvs.out_path(drvs.find(image, "tinyproxy", |n| {
        n.starts_with("tinyproxy-") && !n.contains(".tar")
    }));
    for expected in [
        "\"User\":\"65534:65534\"".to_owned(),
        format!(
            "\"Entrypoint\":[\"{tinyproxy}/bin/tinyproxy\",\"-d\",\"-c\",\"/etc/silo-proxy/tinyproxy.conf\"]"
        ),
        format!("\"io.silo.id\":\"{id}\""),
        format!(
            "\"io.silo.fingerprint\":\"{}\"",
            settings["proxyFingerprint"].as_str().unwrap()
        ),
    ] {
        assert!(text.contains(&expected), "{expected} missing from {text}");
    }
}
