//! Every shipped recipe parses and passes the checks, and means what its
//! comments say.

mod common;

use decant::recipe::distill::TeacherMode;
use decant::recipe::export::Format;
use decant::recipe::publish::Registry;
use decant::recipe::student::StudentInit;
use decant::recipe::{self, Recipe, Severity};

fn check_all() -> Vec<(String, Recipe)> {
    common::reference_model();
    let root = tempfile::tempdir().unwrap();
    common::write_recipe_data(root.path());
    let mut checked = Vec::new();
    for path in common::copy_shipped_recipes(root.path()) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        match recipe::load(&path) {
            Ok(result) => {
                for warning in &result.warnings {
                    assert_eq!(warning.severity, Severity::Warning);
                    // The only expected warning: a GPU backend this build lacks.
                    assert!(
                        warning.message.contains("is not compiled into this binary"),
                        "{name}: unexpected warning {warning}"
                    );
                }
                checked.push((name, result.recipe));
            }
            Err(err) => panic!("shipped recipe {name} does not check:\n{err}"),
        }
    }
    checked
}

#[test]
fn every_shipped_recipe_checks() {
    let checked = check_all();
    let names: Vec<&str> = checked.iter().map(|(name, _)| name.as_str()).collect();
    for required in ["extractor-1b", "nightly", "quickstart"] {
        assert!(
            names.contains(&required),
            "recipes/{required}.toml missing: {names:?}"
        );
    }

    let get = |name: &str| &checked.iter().find(|(n, _)| n == name).unwrap().1;

    let quickstart = get("quickstart");
    assert_eq!(
        quickstart.student.init,
        StudentInit::Depth {
            keep: 10,
            calibration_samples: 64
        }
    );
    assert_eq!(quickstart.train.backend.name(), "cpu");
    assert_eq!(quickstart.data.train.files.len(), 1);
    let qat = quickstart.qat.as_ref().unwrap();
    assert!(quickstart.export.types.contains(&qat.mix));
    assert!(matches!(
        quickstart.publish.as_ref().unwrap().registry,
        Registry::File { .. }
    ));

    let extractor = get("extractor-1b");
    let distill = extractor.distill.as_ref().unwrap();
    assert_eq!(
        (distill.teacher, distill.top_k),
        (TeacherMode::Cached, Some(64))
    );
    assert_eq!(extractor.train.backend.name(), "cuda");
    assert_eq!(extractor.qat.as_ref().unwrap().mix.name(), "q4_k_m");
    assert_eq!(
        extractor.export.formats,
        [Format::Gguf, Format::Safetensors]
    );
    assert!(matches!(
        extractor.publish.as_ref().unwrap().registry,
        Registry::Mlflow { .. }
    ));

    let nightly = get("nightly");
    assert!(nightly.data.train.patterns[0].ends_with("data/nightly/*.jsonl"));
    assert_eq!(nightly.data.train.files.len(), 1);
    assert!(nightly.publish.is_some());
}
