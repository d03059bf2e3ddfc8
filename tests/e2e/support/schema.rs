//! docs/schema/: the JSON Schema of each JSON Lines type, and the check
//! every test applies to what vprobe prints (`check_lines`): a line with a
//! `type` must match that type's schema, and a type without one fails.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::util::repo_root;

/// The schemas by line type (`start.schema.json` → `start`), parsed.
pub fn documents() -> BTreeMap<String, Value> {
    let dir = repo_root().join("docs/schema");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.expect("dir entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(kind) = name.strip_suffix(".schema.json") else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read schema");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        out.insert(kind.to_string(), v);
    }
    out
}

fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static V: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        documents()
            .into_iter()
            .map(|(kind, doc)| {
                let v = jsonschema::validator_for(&doc).unwrap_or_else(|e| {
                    panic!("docs/schema/{kind}.schema.json is not a valid schema: {e}")
                });
                (kind, v)
            })
            .collect()
    })
}

/// Why `line` (one JSON object with a `type`) does not match its schema, or None.
pub fn problems(line: &Value) -> Option<String> {
    let kind = line["type"].as_str()?;
    let Some(v) = validators().get(kind) else {
        return Some(format!(
            "no schema for line type `{kind}`: add docs/schema/{kind}.schema.json (and document it in docs/schema/README.md)"
        ));
    };
    let errors: Vec<String> = v
        .iter_errors(line)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Checks every line of `stdout` that is a JSON object with a `type`
/// against its schema; panics naming the line and what is wrong.
pub fn check_lines(what: &str, stdout: &str) {
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if !v.is_object() || !v["type"].is_string() {
            continue;
        }
        if let Some(p) = problems(&v) {
            panic!("{what}: a JSON line does not match docs/schema/: {p}\n{line}");
        }
    }
}
