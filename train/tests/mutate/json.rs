//! Edits of a JSON document that keep it JSON: one value anywhere in the tree
//! replaced by a hostile one, or removed.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::hostile_u64;

#[derive(Clone, Debug)]
pub struct JsonEdit {
    /// Which node, modulo the number of nodes (the root excluded).
    node: usize,
    /// `None` removes the node.
    value: Option<Value>,
}

pub fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        hostile_u64().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(1e300)),
        Just(json!(-0.0)),
        Just(Value::Null),
        Just(json!(true)),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        proptest::collection::vec(hostile_u64(), 0..4).prop_map(|v| json!(v)),
    ]
}

pub fn json_edit() -> impl Strategy<Value = JsonEdit> {
    (
        any::<usize>(),
        proptest::option::weighted(0.9, hostile_value()),
    )
        .prop_map(|(node, value)| JsonEdit { node, value })
}

/// JSON pointers of every node below the root, depth first.
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        let pointer = format!("{at}/{key}");
        out.push(pointer.clone());
        pointers(child, &pointer, out);
    }
}

pub fn apply(doc: &mut Value, edit: &JsonEdit) {
    let mut all = Vec::new();
    pointers(doc, "", &mut all);
    if all.is_empty() {
        return;
    }
    let pointer = &all[edit.node % all.len()];
    match &edit.value {
        Some(value) => *doc.pointer_mut(pointer).expect("a pointer just listed") = value.clone(),
        None => {
            let (parent, key) = pointer.rsplit_once('/').expect("below the root");
            match doc.pointer_mut(parent).expect("its parent") {
                Value::Object(map) => {
                    map.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Value::Array(items) => {
                    items.remove(key.parse::<usize>().expect("an index"));
                }
                _ => unreachable!("a parent is a container"),
            }
        }
    }
}

pub fn apply_all(mut doc: Value, edits: &[JsonEdit]) -> Value {
    for edit in edits {
        apply(&mut doc, edit);
    }
    doc
}
