//! The Nix runner end to end: no nix on silo's PATH, the real podman, a runner image
//! imported from the Debian 13 chroot (Nix 2.26), as root and rootless.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::common::real::{image_labels, silo_exec};
use crate::common::runner_image::RunnerImage;
use crate::common::{self, E2E_USER, TestEnv};
use crate::{real_env, root_only};

/// Derivations Nix built, from `building '...'` lines.
fn built(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("building '"))
        .count()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The runner image; `None` (the test skipped) where it cannot be made, unless the
/// end-to-end tests are required.
fn runner_image(env: &TestEnv) -> Option<RunnerImage<'_>> {
    match RunnerImage::import(env) {
        Ok(image) => Some(image),
        Err(why) => {
            assert!(
                !common::e2e_required(),
                "SILO_E2E is set, but the runner image cannot be made: {why}"
            );
            common::skip(&format!("the runner image cannot be made: {why}"));
            None
        }
    }
}

/// Builds, rebuilds and runs a workspace with Nix only in the runner.
fn runner_chain(env: &mut TestEnv) {
    env.only_bin_on_path = true;
    let env = &*env;
    let Some(image) = runner_image(env) else {
        return;
    };
    env.remove_tool("nix");
    env.edit_user_toml(|text| {
        text.replace(
            "runner = \"host\"",
            &format!("runner_image = \"{}\"", image.name),
        )
    });
    env.give_to_user();

    let start = Instant::now();
    let first = env.silo(&["build"]);
    let first_time = start.elapsed();
    first
        .success()
        .stderr_has(&format!(
            "Running nix build in a container of {} (auto: there is no nix on PATH;",
            image.name
        ))
        .stderr_has("Built localhost/silo-");
    assert!(env.calls("nix").is_empty(), "the host's nix ran");
    let id = env.id();
    let volume = format!("{}-nix", env.volume_prefix().unwrap());
    let builds: Vec<String> = env
        .calls_starting("podman", &["run"])
        .into_iter()
        .filter(|c| c.contains(" nix --extra-experimental-features nix-command flakes build "))
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert!(
        builds[0].contains(&format!("--volume={volume}:/nix ")),
        "{}",
        builds[0]
    );
    let labels = image_labels(env, &format!("localhost/silo-{id}"));
    let settings: serde_json::Value =
        serde_json::from_str(&env.read(".silo/settings.json")).unwrap();
    assert_eq!(labels["io.silo.fingerprint"], settings["fingerprint"]);

    // Unchanged: no Nix at all, not even a container.
    env.clear_calls();
    let start = Instant::now();
    env.silo(&["build"]).success().stderr_has("is up to date");
    let unchanged_time = start.elapsed();
    assert!(env.calls("nix").is_empty());
    assert!(env.calls_starting("podman", &["run"]).is_empty());

    // An edit of home.nix rebuilds with what the store volume kept.
    env.edit(".silo/home.nix", |text| {
        text.replace(
            "{\n  silo.podman.enable",
            "{\n  home.sessionVariables.E2E_RUNNER = \"from-the-runner\";\n  silo.podman.enable",
        )
    });
    let start = Instant::now();
    let incremental = env.silo(&["build"]);
    let incremental_time = start.elapsed();
    incremental.success().stderr_has("rebuilding");
    let (all, again) = (built(&first.stderr()), built(&incremental.stderr()));
    eprintln!(
        "runner builds ({}, {}): first {} ms ({all} derivations), unchanged {} ms, after a home.nix edit {} ms ({again} derivations)",
        env.user.as_deref().unwrap_or("root"),
        String::from_utf8_lossy(&env.podman(&["--version"]).stdout).trim(),
        ms(first_time),
        ms(unchanged_time),
        ms(incremental_time),
    );
    assert!(
        again > 0 && again < all,
        "the rebuild built {again} of {all} derivations: the store volume was not reused"
    );

    // The image runs.
    env.silo(&["start"]).success();
    assert_eq!(
        silo_exec(env, &env.ws, "echo $E2E_RUNNER"),
        "from-the-runner\n"
    );
    env.silo(&["stop"]).success();

    // What the runner handed back is gone; what silo keeps belongs to the user.
    let owner = fs::metadata(&env.ws).unwrap().uid();
    let scratch = env.home.join(".cache/silo/nix-runner");
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
    assert_eq!(fs::metadata(&scratch).unwrap().uid(), owner);
    for file in [".silo/flake.lock", ".silo/settings.json"] {
        assert_eq!(fs::metadata(env.ws.join(file)).unwrap().uid(), owner);
    }
    let record = env
        .home
        .join(format!(".local/state/silo/nix-runner/{volume}.image"));
    assert_eq!(fs::metadata(record).unwrap().uid(), owner);
    // The store volume is this test's, never the user's `silo-nix`.
    assert!(env.podman(&["volume", "exists", &volume]).status.success());
    drop(image);
}

#[test]
fn the_runner_builds_without_a_host_nix_as_root() {
    root_only!();
    let mut env = real_env!(None);
    runner_chain(&mut env);
}

#[test]
fn the_runner_builds_without_a_host_nix_rootless() {
    root_only!();
    let mut env = real_env!(Some(E2E_USER));
    runner_chain(&mut env);
}

/// Makes an image laid out like docker.io/nixos/nix from the runner image: Nix only in
/// its store, reached through the default profile (`$1` the runner image, `$2` a tag for
/// telling the two apart, `$3` the new image's name, `$4` a scratch directory).
const NIX_IN_STORE: &str = r#"set -eu
runner=$1 variant=$2 name=$3 dir=$4
mkdir -p "$dir/nix" "$dir/root"
podman run --rm --network=none -v "$dir/nix:/nix" "$runner" sh -euc "
  mkdir -p /tmp/pkg/bin; cp /usr/bin/nix /tmp/pkg/bin/; echo $variant >/tmp/pkg/variant
  for n in nix-env nix-store nix-collect-garbage; do ln -s nix /tmp/pkg/bin/\$n; done
  p=\$(nix --extra-experimental-features nix-command store add-path /tmp/pkg --name nix-$variant 2>/dev/null)
  nix-env -p /nix/var/nix/profiles/default --set \$p"
mkdir "$dir/root/rootfs"
container=$(podman create "$runner")
podman export "$container" | tar -C "$dir/root/rootfs" -xf -
podman rm "$container" >/dev/null
rm -f "$dir/root/rootfs/usr/bin/nix" "$dir/root/rootfs/usr/bin/nix-"*
cp -a "$dir/nix/." "$dir/root/rootfs/nix/"
ln -s /nix/var/nix/profiles/default "$dir/root/rootfs/root/.nix-profile"
tar -C "$dir/root/rootfs" --numeric-owner -cf "$dir/image.tar" .
podman import --quiet --change 'ENV PATH=/root/.nix-profile/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' "$dir/image.tar" "$name" >/dev/null
"#;

/// docker.io/nixos/nix keeps its Nix in /nix/store, which the store volume hides: after
/// the runner image changes, silo brings the volume's Nix up to the new image's, once.
#[test]
fn the_store_volume_follows_a_new_runner_image() {
    root_only!();
    let mut env = real_env!(None);
    env.only_bin_on_path = true;
    let env = &env;
    let Some(base) = runner_image(env) else {
        return;
    };
    let images: Vec<String> = ["one", "two"]
        .iter()
        .map(|variant| {
            let name = format!("{}-{variant}", base.name);
            let scratch = env.dir.path().join(format!("image-{variant}"));
            fs::create_dir_all(&scratch).unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", NIX_IN_STORE, "sh", &base.name, variant, &name])
                .arg(&scratch)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "making {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            fs::remove_dir_all(&scratch).unwrap();
            name
        })
        .collect();
    struct Remove<'a>(&'a TestEnv, &'a [String]);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            for name in self.1 {
                self.0.podman(&["rmi", "--force", name]);
            }
        }
    }
    let _remove = Remove(env, &images);
    env.remove_tool("nix");
    let volume = format!("{}-nix", env.volume_prefix().unwrap());
    // Which Nix the volume's profile holds: the variant written next to it.
    let variant = || {
        let out = env.podman(&[
            "run",
            "--rm",
            "--network=none",
            &format!("--volume={volume}:/nix:ro"),
            &base.name,
            "sh",
            "-c",
            "cat \"$(readlink -f /nix/var/nix/profiles/default)/variant\"",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let use_image = |name: &str| {
        env.edit_user_toml(|text| {
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with("runner"))
                .map(|l| format!("{l}\n"))
                .collect();
            kept.replace("[nix]\n", &format!("[nix]\nrunner_image = \"{name}\"\n"))
        })
    };

    // A new volume is filled from the first image.
    use_image(&images[0]);
    env.silo(&["build"]).success();
    assert_eq!(variant(), "one");

    // The second image's Nix replaces it in the volume, before the build.
    use_image(&images[1]);
    env.edit(".silo/home.nix", |text| text + "\n");
    let run = env.silo(&["build"]);
    run.success().stderr_has(&format!(
        "Bringing the Nix runner's store ({volume}) up to the image {}...",
        images[1]
    ));
    assert_eq!(variant(), "two");

    // Once.
    env.edit(".silo/home.nix", |text| text + "\n");
    let run = env.silo(&["build"]);
    run.success();
    assert!(!run.stderr().contains("Bringing"), "{}", run.stderr());
    drop(base);
}
