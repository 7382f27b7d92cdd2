//! How host users become the image user (uid/gid 1000), so that files in the workspace
//! keep their host owner, and what the container's other ids are on the host.

use serde::{Deserialize, Serialize};

/// The image's user and group ids (fixed by the Nix image function).
pub const IMAGE_UID: u32 = 1000;

/// How many ids a container has: 0..65536, as in Podman's default user namespaces.
const CONTAINER_IDS: u32 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserMapping {
    /// Rootless Podman: keep-id maps the user running silo to the image user.
    Rootless,
    /// Podman run as root, which has no keep-id: an explicit map puts `owner` and
    /// `group` (the owner of the workspace directory, root for root's own) at the image
    /// user and group.
    Root { owner: u32, group: u32 },
}

impl UserMapping {
    /// Rootless for a normal user; as root, the image user becomes `owner`:`group`.
    pub fn detect(owner: u32, group: u32) -> UserMapping {
        if crate::host::is_root() {
            UserMapping::Root { owner, group }
        } else {
            UserMapping::Rootless
        }
    }

    /// The host uid and gid of what silo creates for the image user on the host (as
    /// root; rootless, the user's own files are already the image user's).
    pub fn host_owner(self) -> Option<(u32, u32)> {
        match self {
            UserMapping::Rootless => None,
            UserMapping::Root { owner, group } => Some((owner, group)),
        }
    }

    /// The user namespace flags for a Podman version and the host user's uid.
    pub fn args(self, podman: (u32, u32), host_uid: u32) -> Result<Vec<String>, String> {
        match self {
            // keep-id with a target uid arrived in Podman 4.3.
            UserMapping::Rootless if podman >= (4, 3) => Ok(vec![format!(
                "--userns=keep-id:uid={IMAGE_UID},gid={IMAGE_UID}"
            )]),
            UserMapping::Rootless if host_uid == IMAGE_UID => {
                Ok(vec!["--userns=keep-id".to_owned()])
            }
            UserMapping::Rootless => Err(format!(
                "Podman {}.{} cannot map your uid {host_uid} to the image user {IMAGE_UID} (--userns=keep-id:uid= needs Podman 4.3 or newer); upgrade Podman",
                podman.0, podman.1
            )),
            UserMapping::Root { owner, group } => Ok([("--uidmap", owner), ("--gidmap", group)]
                .iter()
                .flat_map(|(flag, id)| {
                    root_map(*id).into_iter().map(|(inside, outside, len)| {
                        [flag.to_string(), format!("{inside}:{outside}:{len}")]
                    })
                })
                .flatten()
                .collect()),
        }
    }
}

/// The id map for root Podman, as `(container, host, length)` runs: the image user is
/// `owner`, and every other container id, root included, is a host id from 1 upwards
/// that is neither 0 nor `owner`, in order. Host ids stay below 65538: Podman 4.3 could
/// not mount images with ids shifted further here.
fn root_map(owner: u32) -> Vec<(u32, u32, u32)> {
    let mut runs: Vec<(u32, u32, u32)> = Vec::new();
    let mut host = 1;
    let mut push = |inside: u32, outside: u32| match runs.last_mut() {
        Some((i, o, len)) if *i + *len == inside && *o + *len == outside => *len += 1,
        _ => runs.push((inside, outside, 1)),
    };
    for inside in 0..CONTAINER_IDS {
        if inside == IMAGE_UID {
            push(inside, owner);
            continue;
        }
        if host == owner {
            host += 1;
        }
        push(inside, host);
        host += 1;
    }
    runs.sort();
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(mapping: UserMapping) -> String {
        mapping.args((4, 3), 0).unwrap().join(" ")
    }

    #[test]
    fn rootless_keeps_the_users_id() {
        assert_eq!(
            UserMapping::Rootless.args((4, 3), 1234).unwrap(),
            ["--userns=keep-id:uid=1000,gid=1000"]
        );
        assert_eq!(
            UserMapping::Rootless.args((4, 2), 1000).unwrap(),
            ["--userns=keep-id"]
        );
        assert!(
            UserMapping::Rootless
                .args((3, 4), 1001)
                .unwrap_err()
                .contains("needs Podman 4.3")
        );
    }

    #[test]
    fn root_in_its_own_workspace() {
        assert_eq!(
            joined(UserMapping::Root { owner: 0, group: 0 }),
            "--uidmap 0:1:1000 --uidmap 1000:0:1 --uidmap 1001:1001:64535 \
             --gidmap 0:1:1000 --gidmap 1000:0:1 --gidmap 1001:1001:64535"
        );
    }

    /// The host id of a container id under a map.
    fn host_of(runs: &[(u32, u32, u32)], inside: u32) -> Option<u32> {
        runs.iter()
            .find(|(i, _, len)| (*i..*i + *len).contains(&inside))
            .map(|(i, o, _)| o + (inside - i))
    }

    #[test]
    fn root_in_another_users_workspace_maps_to_that_user() {
        // Contiguous runs are merged: 1000 -> 1001 continues 0 -> 1.
        assert_eq!(
            joined(UserMapping::Root {
                owner: 1001,
                group: 1002
            }),
            "--uidmap 0:1:65536 --gidmap 0:1:1000 --gidmap 1000:1002:1 --gidmap 1001:1001:1 --gidmap 1002:1003:64534"
        );
        let runs = root_map(1000);
        assert_eq!(host_of(&runs, 1000), Some(1000));
        assert_eq!(host_of(&runs, 999), Some(1001));
        assert_eq!(host_of(&runs, 0), Some(1));
    }

    #[test]
    fn root_maps_never_give_host_root_or_overlap() {
        for owner in [0, 1, 5, 999, 1000, 1001, 4242, 65535, 65536, 70000] {
            let runs = root_map(owner);
            let mut hosts: Vec<u32> = runs.iter().flat_map(|(_, o, len)| *o..*o + *len).collect();
            let inside: u32 = runs.iter().map(|(_, _, len)| len).sum();
            assert_eq!(inside, CONTAINER_IDS);
            let count = hosts.len();
            hosts.sort();
            hosts.dedup();
            assert_eq!(hosts.len(), count, "overlap for {owner}");
            assert_eq!(hosts.contains(&0), owner == 0, "host root for {owner}");
            assert_eq!(host_of(&runs, IMAGE_UID), Some(owner));
            assert!(hosts.iter().all(|h| *h <= 65537 || *h == owner));
        }
    }
}
