//! What an exported model says about where it came from, filled by the caller
//! (the pipeline knows the teacher, the data and the recipe): written as GGUF
//! `general.*` and `decant.*` keys and into the model card.

use quantize::gguf::Value;

/// A model the export derives from (`general.base_model.N.*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelRef {
    pub name: String,
    pub organization: Option<String>,
    /// Where it lives, e.g. `https://huggingface.co/ORG/REPO`.
    pub repo_url: Option<String>,
}

/// A data set the model was trained on (`general.dataset.N.*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetRef {
    pub name: String,
    pub repo_url: Option<String>,
}

/// One line of the model card's evaluation table.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    pub metric: String,
    pub dataset: String,
    pub value: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportMetadata {
    /// `general.name`; the model card's title.
    pub name: String,
    pub base_models: Vec<ModelRef>,
    pub datasets: Vec<DatasetRef>,
    /// An SPDX id such as `apache-2.0`.
    pub license: Option<String>,
    pub quantized_by: Option<String>,
    pub recipe_hash: Option<String>,
    pub run_id: Option<String>,
    /// The ggml type quantization-aware training targeted.
    pub qat_type: Option<String>,
    pub imatrix_dataset: Option<String>,
    pub eval: Vec<EvalResult>,
}

impl ExportMetadata {
    /// The `general.*` keys, in gguf-py's order for them.
    pub fn general_entries(&self) -> Vec<(String, Value)> {
        let mut kv: Vec<(String, Value)> = vec![("general.name".into(), self.name.as_str().into())];
        if let Some(by) = &self.quantized_by {
            kv.push(("general.quantized_by".into(), by.as_str().into()));
        }
        if let Some(license) = &self.license {
            kv.push(("general.license".into(), license.as_str().into()));
        }
        if !self.base_models.is_empty() {
            kv.push(("general.base_model.count".into(), Value::U32(self.base_models.len() as u32)));
        }
        for (i, base) in self.base_models.iter().enumerate() {
            let key = |field: &str| format!("general.base_model.{i}.{field}");
            kv.push((key("name"), base.name.as_str().into()));
            if let Some(org) = &base.organization {
                kv.push((key("organization"), org.as_str().into()));
            }
            if let Some(url) = &base.repo_url {
                kv.push((key("repo_url"), url.as_str().into()));
            }
        }
        if !self.datasets.is_empty() {
            kv.push(("general.dataset.count".into(), Value::U32(self.datasets.len() as u32)));
        }
        for (i, data) in self.datasets.iter().enumerate() {
            let key = |field: &str| format!("general.dataset.{i}.{field}");
            kv.push((key("name"), data.name.as_str().into()));
            if let Some(url) = &data.repo_url {
                kv.push((key("repo_url"), url.as_str().into()));
            }
        }
        kv
    }

    /// The `decant.*` keys: the tool version and what the caller knows of the run.
    pub fn decant_entries(&self) -> Vec<(String, Value)> {
        let mut kv: Vec<(String, Value)> =
            vec![("decant.version".into(), env!("CARGO_PKG_VERSION").into())];
        let optional = [
            ("decant.recipe_hash", &self.recipe_hash),
            ("decant.run_id", &self.run_id),
            ("decant.qat_type", &self.qat_type),
            ("decant.imatrix_dataset", &self.imatrix_dataset),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                kv.push((key.into(), value.as_str().into()));
            }
        }
        kv
    }
}
