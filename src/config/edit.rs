//! Editing `.silo/silo.toml` in place for `silo init --[no-]podman`: text ranges are
//! replaced, so comments and layout stay exactly as the user left them.

use std::ops::Range;

use anyhow::{Result, bail};
use serde::Deserialize;
use toml::Spanned;

use super::defaults::{create_args, toml_string_array};

// Only the keys this editor touches; everything else is ignored here and validated by
// the normal loader.
#[derive(Deserialize)]
struct Probe {
    features: Option<ProbeFeatures>,
    podman: Option<ProbePodman>,
}

#[derive(Deserialize)]
struct ProbeFeatures {
    podman: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
struct ProbePodman {
    create_args: Option<Spanned<Vec<String>>>,
}

/// What `set_podman_feature` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureEdit {
    pub text: String,
    /// `[features].podman` was changed or added.
    pub feature_changed: bool,
    /// `[podman].create_args` held the other mode's defaults and now holds this mode's.
    pub create_args_replaced: bool,
    /// `[podman].create_args` was customised and left alone.
    pub create_args_custom: bool,
}

fn probe(source: &str) -> Result<Probe> {
    toml::from_str(source).map_err(|e| anyhow::anyhow!("{}", e.message().trim_end()))
}

/// Sets `[features].podman` and, when `create_args` still holds the other mode's
/// defaults, swaps them for this mode's defaults.
pub fn set_podman_feature(source: &str, enable: bool) -> Result<FeatureEdit> {
    let found = probe(source)?;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();

    let current = found.features.and_then(|f| f.podman);
    let feature_changed = current.as_ref().is_none_or(|v| *v.get_ref() != enable);
    match current {
        Some(value) if *value.get_ref() != enable => edits.push((value.span(), enable.to_string())),
        Some(_) => {}
        None => edits.push(insertion_for_feature(source, enable)),
    }

    let mut create_args_replaced = false;
    let mut create_args_custom = false;
    if let Some(args) = found.podman.and_then(|p| p.create_args) {
        if *args.get_ref() == create_args(!enable) {
            edits.push((args.span(), toml_string_array(create_args(enable))));
            create_args_replaced = true;
        } else if *args.get_ref() != create_args(enable) {
            create_args_custom = true;
        }
    }

    let mut text = source.to_owned();
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    for (range, replacement) in edits {
        text.replace_range(range, &replacement);
    }

    // The edit must read back as intended, or nothing is written.
    let check = probe(&text)
        .ok()
        .and_then(|p| p.features)
        .and_then(|f| f.podman);
    if check.map(|v| v.into_inner()) != Some(enable) {
        bail!(
            "cannot set [features].podman automatically; set `podman = {enable}` under [features] by hand"
        );
    }
    Ok(FeatureEdit {
        text,
        feature_changed,
        create_args_replaced,
        create_args_custom,
    })
}

/// Where to add `podman = ...`: right after a `[features]` header, or a new section at the end.
fn insertion_for_feature(source: &str, enable: bool) -> (Range<usize>, String) {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("").trim();
        let header = code
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(str::trim);
        offset += line.len();
        if header == Some("features") {
            let newline = if line.ends_with('\n') { "" } else { "\n" };
            return (offset..offset, format!("{newline}podman = {enable}\n"));
        }
    }
    let separator = if source.is_empty() || source.ends_with("\n\n") {
        ""
    } else if source.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    (
        offset..offset,
        format!("{separator}[features]\npodman = {enable}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults::workspace_toml;
    use crate::config::values::WorkspaceId;

    #[test]
    fn default_file_switches_feature_and_default_args() {
        let id = WorkspaceId::parse("ab3f9c12").unwrap();
        let edit = set_podman_feature(&workspace_toml(&id, false), true).unwrap();
        assert_eq!(edit.text, workspace_toml(&id, true));
        assert!(edit.feature_changed && edit.create_args_replaced && !edit.create_args_custom);
        let back = set_podman_feature(&edit.text, false).unwrap();
        assert_eq!(back.text, workspace_toml(&id, false));
    }

    #[test]
    fn same_value_changes_nothing() {
        let id = WorkspaceId::parse("ab3f9c12").unwrap();
        let src = workspace_toml(&id, true);
        let edit = set_podman_feature(&src, true).unwrap();
        assert_eq!(edit.text, src);
        assert!(!edit.feature_changed && !edit.create_args_replaced && !edit.create_args_custom);
    }

    #[test]
    fn comments_and_custom_args_are_kept() {
        let src = "[general] # ws\nid = \"ab3f9c12\"\n\n[features]\n# nested?\npodman = false # off for now\n\n[podman]\ncreate_args = [\"--cap-drop=ALL\"]\n";
        let edit = set_podman_feature(src, true).unwrap();
        assert_eq!(
            edit.text,
            "[general] # ws\nid = \"ab3f9c12\"\n\n[features]\n# nested?\npodman = true # off for now\n\n[podman]\ncreate_args = [\"--cap-drop=ALL\"]\n"
        );
        assert!(edit.create_args_custom && !edit.create_args_replaced);
    }

    #[test]
    fn missing_key_is_added_under_the_header() {
        let src = "[general]\nid = \"ab3f9c12\"\n[features] # flags\n[limits]\ncpus = 1\n";
        assert_eq!(
            set_podman_feature(src, true).unwrap().text,
            "[general]\nid = \"ab3f9c12\"\n[features] # flags\npodman = true\n[limits]\ncpus = 1\n"
        );
    }

    #[test]
    fn missing_section_is_appended() {
        assert_eq!(
            set_podman_feature("[general]\nid = \"ab3f9c12\"", false)
                .unwrap()
                .text,
            "[general]\nid = \"ab3f9c12\"\n\n[features]\npodman = false\n"
        );
        assert_eq!(
            set_podman_feature("", true).unwrap().text,
            "[features]\npodman = true\n"
        );
    }

    #[test]
    fn dotted_and_inline_forms() {
        assert_eq!(
            set_podman_feature("features.podman = false\n", true)
                .unwrap()
                .text,
            "features.podman = true\n"
        );
        assert_eq!(
            set_podman_feature("features = { podman = true }\n", false)
                .unwrap()
                .text,
            "features = { podman = false }\n"
        );
        // An inline table without the key cannot take a new [features] section.
        assert!(set_podman_feature("features = {}\n", true).is_err());
    }

    #[test]
    fn invalid_toml_is_refused() {
        assert!(set_podman_feature("[features\npodman = 1", true).is_err());
        assert!(set_podman_feature("[features]\npodman = \"yes\"\n", true).is_err());
    }
}
