//! Questions about derivations, answered from `nix derivation show --recursive` (Nix 2.26:
//! an object keyed by .drv path, each with name, env, inputDrvs and outputs).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

pub struct Drvs(BTreeMap<String, Value>);

impl Drvs {
    pub fn parse(json: &str) -> Drvs {
        let value: Value = serde_json::from_str(json).expect("nix derivation show prints JSON");
        match value {
            Value::Object(map) => Drvs(map.into_iter().collect()),
            other => panic!("nix derivation show printed {other}"),
        }
    }

    pub fn name(&self, drv: &str) -> &str {
        self.0[drv]["name"].as_str().unwrap_or_default()
    }

    /// An environment variable of the derivation ("" when unset).
    pub fn env(&self, drv: &str, key: &str) -> &str {
        self.0[drv]["env"][key].as_str().unwrap_or_default()
    }

    pub fn out_path(&self, drv: &str) -> &str {
        self.0[drv]["outputs"]["out"]["path"]
            .as_str()
            .unwrap_or_default()
    }

    /// The derivations `drv` needs directly.
    pub fn inputs(&self, drv: &str) -> Vec<&str> {
        self.0[drv]["inputDrvs"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn input_names(&self, drv: &str) -> BTreeSet<&str> {
        self.inputs(drv).into_iter().map(|d| self.name(d)).collect()
    }

    /// The derivation whose output is `path`'s root (the root of an installable).
    pub fn root_named(&self, name: &str) -> &str {
        let found: Vec<&String> = self.0.keys().filter(|d| self.name(d) == name).collect();
        assert_eq!(found.len(), 1, "derivations named {name}: {found:?}");
        found[0]
    }

    /// The one derivation in `root`'s closure (itself included) whose name `matches`.
    pub fn find(&self, root: &str, what: &str, matches: impl Fn(&str) -> bool) -> &str {
        let found: Vec<&str> = self
            .closure(root)
            .into_iter()
            .filter(|d| matches(self.name(d)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{what} in the closure of {}: {found:?}",
            self.name(root)
        );
        found[0]
    }

    /// The one direct input of `drv` whose name `matches`.
    pub fn input(&self, drv: &str, what: &str, matches: impl Fn(&str) -> bool) -> &str {
        let found: Vec<&str> = self
            .inputs(drv)
            .into_iter()
            .filter(|d| matches(self.name(d)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{what} among the inputs of {}: {found:?}",
            self.name(drv)
        );
        found[0]
    }

    /// Every derivation `root` needs, directly or not, and itself.
    pub fn closure(&self, root: &str) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([root]);
        while let Some(drv) = queue.pop_front() {
            let Some((key, _)) = self.0.get_key_value(drv) else {
                continue;
            };
            if seen.insert(key.as_str()) {
                queue.extend(self.inputs(key));
            }
        }
        seen
    }
}
