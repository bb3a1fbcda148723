//! `[export]`: which files the student is written to.

use quantize::mix::Mix;
use serde::{Serialize, Serializer};

use super::qat::Qat;
use super::reader::{Table, boolean, one_of, parsed, string};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Gguf,
    /// A Hugging Face directory: config, safetensors, tokenizer, model card.
    Safetensors,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gguf => "gguf",
            Format::Safetensors => "safetensors",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Export {
    pub formats: Vec<Format>,
    /// One GGUF file per type.
    #[serde(serialize_with = "mix_names")]
    pub types: Vec<Mix>,
    /// Every 2-D weight gets the type itself, without the mix's per-tensor rules.
    pub pure: bool,
    /// The model's name in file names, `general.name` and the registry.
    pub name: String,
}

fn mix_names<S: Serializer>(mixes: &[Mix], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(mixes.iter().map(|mix| mix.name()))
}

impl Export {
    /// Without an `[export]` section: the QAT type (or Q8_0) as GGUF, named
    /// after the recipe.
    pub fn default_for(name: String, qat: Option<&Qat>) -> Self {
        Export {
            formats: vec![Format::Gguf],
            types: vec![qat.map_or(Mix::Q8_0, |qat| qat.mix)],
            pure: qat.is_some_and(|qat| qat.pure),
            name,
        }
    }
}

pub fn read(mut table: Table<'_, '_>, default_name: String, qat: Option<&Qat>) -> Option<Export> {
    let formats = table.list("formats", one_of(&["gguf", "safetensors"]), |formats| {
        let formats: Vec<Format> = formats
            .iter()
            .map(|format| match *format.get_ref() {
                "gguf" => Format::Gguf,
                _ => Format::Safetensors,
            })
            .collect();
        if formats.is_empty() {
            return Err("expected at least one format (gguf, safetensors)".to_owned());
        }
        match duplicate(&formats) {
            Some(format) => Err(format!("'{}' is listed twice", format.name())),
            None => Ok(formats),
        }
    });
    let types = table.list("types", parsed::<Mix>, |types| {
        let types: Vec<Mix> = types.into_iter().map(|t| t.into_inner()).collect();
        if types.is_empty() {
            return Err("expected at least one type".to_owned());
        }
        match duplicate(&types) {
            Some(mix) => Err(format!("{mix} is listed twice")),
            None => Ok(types),
        }
    });
    let pure = table.optional("pure", boolean);
    let name = table.optional("name", |value| {
        let name = string(value)?;
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(name)
        } else {
            Err(format!(
                "'{name}' cannot name files: use letters, digits, '-', '_' and '.'"
            ))
        }
    });
    let defaults = Export::default_for(default_name, qat);
    let formats = formats.unwrap_or(defaults.formats);
    let out = table.collector();
    if table.has("types") && !formats.contains(&Format::Gguf) && types.is_some() {
        out.error(
            out.span_of(&format!("{}.types", table.path())),
            format!(
                "`{}.types`: types choose GGUF quantizations, and `formats` has no \"gguf\"",
                table.path()
            ),
        );
    }
    let gguf = formats.contains(&Format::Gguf);
    let export = Export {
        formats,
        types: if gguf {
            types.unwrap_or(defaults.types)
        } else {
            Vec::new()
        },
        pure: pure.unwrap_or(defaults.pure),
        name: name.unwrap_or(defaults.name),
    };
    if let Some(qat) = qat
        && export.formats.contains(&Format::Gguf)
        && !(export.types.contains(&qat.mix) && export.pure == qat.pure)
    {
        let pure = |pure: bool| if pure { " (pure)" } else { "" };
        out.warn(
            out.span_of(&format!("{}.types", table.path())),
            format!(
                "[{}]: QAT trained against {}{} but no GGUF export is {}{}; the other types round \
                 the weights a second time and lose what QAT gained",
                table.path(),
                qat.mix,
                pure(qat.pure),
                qat.mix,
                pure(qat.pure)
            ),
        );
    }
    table.finish();
    Some(export)
}

fn duplicate<T: PartialEq + Copy>(items: &[T]) -> Option<T> {
    items
        .iter()
        .enumerate()
        .find(|(index, item)| items[..*index].contains(item))
        .map(|(_, item)| *item)
}
