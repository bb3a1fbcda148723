//! What an MLflow run records of a decant run: the recipe flattened to params
//! (`train.lr = 0.0003`) and the manifest's numeric metrics, keyed by stage
//! (`distill.last_loss`) or, for an exported file, by its eval label
//! (`q4_k_m.ppl`).

use serde_json::Value;

use super::Artifact;

/// MLflow's longest param value.
const MAX_PARAM_VALUE: usize = 6000;

/// Every scalar and array of the recipe, under its dotted key path.
pub fn params(recipe: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table =
        toml::from_str(recipe).map_err(|e| format!("is not the TOML recipe decant ran: {e}"))?;
    let mut params = Vec::new();
    flatten("", &toml::Value::Table(table), &mut params);
    Ok(params)
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        toml::Value::String(text) => out.push((prefix.to_owned(), clip(text))),
        other => out.push((prefix.to_owned(), clip(&other.to_string()))),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_PARAM_VALUE).collect()
}

/// The numbers the manifest holds for each artifact.
pub fn metrics(artifacts: &[Artifact]) -> Vec<(String, f64)> {
    let mut metrics = Vec::new();
    for artifact in artifacts {
        let eval = &artifact.metrics["eval"];
        if let Some(label) = eval["label"].as_str() {
            numbers(label, eval, &mut metrics);
        } else {
            numbers(&artifact.stage, &artifact.metrics, &mut metrics);
        }
    }
    metrics
}

fn numbers(prefix: &str, value: &Value, out: &mut Vec<(String, f64)>) {
    for (key, value) in value.as_object().into_iter().flatten() {
        if let Some(number) = value.as_f64() {
            out.push((format!("{prefix}.{key}"), number));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_flatten_to_dotted_params() {
        let mut params = params("[train]\nlr = 3e-4\nsteps = 10\n[student.init]\nkind = \"depth\"\n[eval]\nmetrics = [\"ppl\"]\n").unwrap();
        params.sort();
        assert_eq!(
            params,
            [
                ("eval.metrics".to_owned(), "[\"ppl\"]".to_owned()),
                ("student.init.kind".to_owned(), "depth".to_owned()),
                ("train.lr".to_owned(), "0.0003".to_owned()),
                ("train.steps".to_owned(), "10".to_owned()),
            ]
        );
        assert!(params_error("[train\n").contains("is not the TOML recipe decant ran"));
    }

    fn params_error(text: &str) -> String {
        params(text).unwrap_err()
    }
}
