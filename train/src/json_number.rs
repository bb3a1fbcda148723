//! JSON has no NaN or infinity: a non-finite float (a skipped step's loss) is
//! written as `"NaN"`, `"inf"` or `"-inf"`, so that every line of
//! `metrics.jsonl` and every checkpoint stays valid JSON and reads back.

use serde::{Deserialize, Deserializer, Serializer, de::Error};

pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_str(&value.to_string())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrName {
    Number(f64),
    Name(String),
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    match NumberOrName::deserialize(deserializer)? {
        NumberOrName::Number(value) => Ok(value),
        NumberOrName::Name(name) => match name.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(D::Error::custom(format!(
                "expected a number, NaN, inf or -inf, not {name:?}"
            ))),
        },
    }
}
