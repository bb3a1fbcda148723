//! `[teacher]`: the model the student learns from.

use std::path::Path;

use serde::Serialize;

use super::paths::ModelRef;
use super::reader::{Table, string};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Teacher {
    pub model: ModelRef,
}

pub fn read(mut table: Table<'_, '_>, base: &Path) -> Option<Teacher> {
    let model = table.required("model", |value| ModelRef::parse(base, &string(value)?));
    table.finish();
    Some(Teacher { model: model? })
}
