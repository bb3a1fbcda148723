//! Strict, error-collecting reading of one TOML table of a recipe.
//!
//! serde's derived deserializers stop at the first error; a recipe check must
//! report all of them. So each section reads its keys one by one from the
//! parser's spanned document: a wrong value is reported at its own span and
//! the rest of the section is still read, a missing required key is reported
//! at its table, and [`Table::finish`] reports every key nobody asked for.

use std::fmt::Display;
use std::str::FromStr;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Collector, Span};

pub type Value<'i> = Spanned<DeValue<'i>>;

/// A table being read: which keys were asked for, where to report.
pub struct Table<'a, 'i> {
    path: String,
    table: &'a DeTable<'i>,
    span: Span,
    asked: Vec<&'static str>,
    out: &'a Collector,
    check_unknown: bool,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The whole document.
    pub fn root(document: &'a Spanned<DeTable<'i>>, out: &'a Collector) -> Self {
        out.record_span(String::new(), document.span());
        Self::new(String::new(), document.get_ref(), document.span(), out)
    }

    fn new(path: String, table: &'a DeTable<'i>, span: Span, out: &'a Collector) -> Self {
        Self {
            path,
            table,
            span,
            asked: Vec::new(),
            out,
            check_unknown: true,
        }
    }

    pub fn collector(&self) -> &'a Collector {
        self.out
    }

    /// How the table is named in messages: `[train]`, `[distill.loss]`.
    pub fn name(&self) -> String {
        if self.path.is_empty() {
            "the recipe's top level".to_owned()
        } else {
            format!("[{}]", self.path)
        }
    }

    /// The dotted path of the table (`distill.loss`), empty for the document.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn span(&self) -> Span {
        self.span.clone()
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Whether `key` is in the table.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn ask(&mut self, key: &'static str) {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
    }

    /// The value of `key`, if present; `key` counts as known from here on.
    pub fn value(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        self.ask(key);
        let value = self.table.get(key)?;
        self.out.record_span(self.key_path(key), value.span());
        Some(value)
    }

    /// Reports `message` about the value at `span` of `key`.
    pub fn error_at(&self, span: Span, key: &str, message: impl Display) {
        self.out
            .error(span, format!("`{}`: {message}", self.key_path(key)));
    }

    /// Reads `key` through `convert` if it is present; a failed conversion is
    /// reported at the value.
    pub fn optional<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&Value<'i>) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.value(key)?;
        match convert(value) {
            Ok(converted) => Some(converted),
            Err(message) => {
                self.error_at(value.span(), key, message);
                None
            }
        }
    }

    /// Like [`Table::optional`], and a missing key is reported at the table.
    pub fn required<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&Value<'i>) -> Result<T, String>,
    ) -> Option<T> {
        if !self.require(key) {
            return None;
        }
        self.optional(key, convert)
    }

    /// The array at `key`, each element read by `element` (a bad one is
    /// reported at its own span, by index), then the whole list by `whole`
    /// (reported at the array).
    pub fn list<T, V>(
        &mut self,
        key: &'static str,
        element: impl Fn(&Value<'i>) -> Result<T, String>,
        whole: impl FnOnce(Vec<Spanned<T>>) -> Result<V, String>,
    ) -> Option<V> {
        let value = self.value(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.error_at(value.span(), key, expected("an array", value));
            return None;
        };
        let mut elements = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match element(item) {
                Ok(converted) => elements.push(Spanned::new(item.span(), converted)),
                Err(message) => {
                    ok = false;
                    self.out.error(
                        item.span(),
                        format!("`{}[{index}]`: {message}", self.key_path(key)),
                    );
                }
            }
        }
        if !ok {
            return None;
        }
        match whole(elements) {
            Ok(list) => Some(list),
            Err(message) => {
                self.error_at(value.span(), key, message);
                None
            }
        }
    }

    /// Reports a missing required `key` at the table.
    pub fn require(&mut self, key: &'static str) -> bool {
        self.ask(key);
        let present = self.has(key);
        if !present {
            self.out.error(
                self.span.clone(),
                format!("{}: missing required key `{key}`", self.name()),
            );
        }
        present
    }

    /// The sub-table at `key`, if present and a table.
    pub fn table(&mut self, key: &'static str) -> Option<Table<'a, 'i>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(Table::new(
                self.key_path(key),
                table,
                value.span(),
                self.out,
            )),
            other => {
                self.error_at(
                    value.span(),
                    key,
                    format!("expected a table, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// The `kind` of a tagged table, one of `kinds`. An unknown kind is
    /// reported and the table's other keys are not checked: which ones are
    /// valid depends on the kind.
    pub fn kind(&mut self, kinds: &[&'static str]) -> Option<&'static str> {
        let name = self.required("kind", string)?;
        match kinds.iter().find(|kind| **kind == name) {
            Some(kind) => Some(kind),
            None => {
                let span = self
                    .table
                    .get("kind")
                    .map(|v| v.span())
                    .unwrap_or(self.span());
                self.error_at(
                    span,
                    "kind",
                    format!("unknown kind '{name}' (expected {})", list(kinds)),
                );
                self.check_unknown = false;
                None
            }
        }
    }

    /// Like [`Table::kind`], with `default` when the table gives no `kind`.
    pub fn kind_or(
        &mut self,
        kinds: &[&'static str],
        default: &'static str,
    ) -> Option<&'static str> {
        if self.has("kind") {
            self.kind(kinds)
        } else {
            self.ask("kind");
            Some(default)
        }
    }

    /// Reports every key that was not asked for, with the keys that were.
    pub fn finish(self) {
        if !self.check_unknown {
            return;
        }
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if self.asked.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key `{name}` in {}", self.name());
            let closest = self
                .asked
                .iter()
                .map(|known| (strsim::damerau_levenshtein(name, known), *known))
                .min();
            if let Some((distance, known)) = closest
                && distance <= 2.max(name.len() / 3)
            {
                message.push_str(&format!("; did you mean `{known}`?"));
            }
            message.push_str(&format!(" (known keys: {})", self.asked.join(", ")));
            self.out.error(key.span(), message);
        }
    }
}

/// `a, b or c`, quoted.
pub fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("the string \"{text}\""),
        DeValue::Integer(integer) => format!("the integer {integer}"),
        DeValue::Float(float) => format!("the float {float}"),
        DeValue::Boolean(flag) => format!("the boolean {flag}"),
        DeValue::Datetime(datetime) => format!("the datetime {datetime}"),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

fn expected(what: &str, value: &Value<'_>) -> String {
    format!("expected {what}, found {}", describe(value.get_ref()))
}

pub fn string(value: &Value<'_>) -> Result<String, String> {
    match value.get_ref() {
        DeValue::String(text) => Ok(text.to_string()),
        _ => Err(expected("a string", value)),
    }
}

pub fn boolean(value: &Value<'_>) -> Result<bool, String> {
    value
        .get_ref()
        .as_bool()
        .ok_or_else(|| expected("true or false", value))
}

fn integer(value: &Value<'_>) -> Result<i128, String> {
    match value.get_ref() {
        DeValue::Integer(integer) => i128::from_str_radix(integer.as_str(), integer.radix())
            .map_err(|_| format!("the integer {integer} is out of range")),
        _ => Err(expected("an integer", value)),
    }
}

/// A non-negative integer.
pub fn count(value: &Value<'_>) -> Result<u64, String> {
    let integer = integer(value)?;
    u64::try_from(integer).map_err(|_| format!("expected a non-negative integer, found {integer}"))
}

/// An integer of at least 1.
pub fn positive(value: &Value<'_>) -> Result<u64, String> {
    match count(value)? {
        0 => Err("expected an integer of at least 1, found 0".to_owned()),
        n => Ok(n),
    }
}

/// A finite number; integers are taken as floats (`temperature = 2`).
pub fn number(value: &Value<'_>) -> Result<f64, String> {
    let number = match value.get_ref() {
        DeValue::Float(float) => float
            .as_str()
            .parse::<f64>()
            .map_err(|_| format!("cannot read the float {float}"))?,
        DeValue::Integer(_) => integer(value)? as f64,
        _ => return Err(expected("a number", value)),
    };
    if number.is_finite() {
        Ok(number)
    } else {
        Err(format!("expected a finite number, found {number}"))
    }
}

/// A number in `low..=high`.
pub fn number_in(low: f64, high: f64) -> impl Fn(&Value<'_>) -> Result<f64, String> {
    move |value| {
        let number = number(value)?;
        if (low..=high).contains(&number) {
            Ok(number)
        } else {
            Err(format!("{number} is not between {low} and {high}"))
        }
    }
}

/// A number of at least 0.
pub fn non_negative(value: &Value<'_>) -> Result<f64, String> {
    let number = number(value)?;
    if number >= 0.0 {
        Ok(number)
    } else {
        Err(format!("expected a number of at least 0, found {number}"))
    }
}

/// A number greater than 0.
pub fn above_zero(value: &Value<'_>) -> Result<f64, String> {
    let number = number(value)?;
    if number > 0.0 {
        Ok(number)
    } else {
        Err(format!("expected a number greater than 0, found {number}"))
    }
}

/// A string parsed by its type's `FromStr`, whose message says what is valid.
pub fn parsed<T: FromStr>(value: &Value<'_>) -> Result<T, String>
where
    T::Err: Display,
{
    string(value)?.parse::<T>().map_err(|err| err.to_string())
}

/// A string that must be one of `names`.
pub fn one_of(
    names: &'static [&'static str],
) -> impl Fn(&Value<'_>) -> Result<&'static str, String> {
    move |value| {
        let name = string(value)?;
        names
            .iter()
            .find(|known| **known == name)
            .copied()
            .ok_or_else(|| format!("unknown value '{name}' (expected {})", list(names)))
    }
}

/// One string or an array of them (`train = "a.jsonl"` or `train = ["a", "b"]`).
pub fn strings(value: &Value<'_>) -> Result<Vec<Spanned<String>>, String> {
    match value.get_ref() {
        DeValue::String(text) => Ok(vec![Spanned::new(value.span(), text.to_string())]),
        DeValue::Array(items) if items.is_empty() => {
            Err("expected at least one entry, found an empty array".to_owned())
        }
        DeValue::Array(items) => items
            .iter()
            .map(|item| Ok(Spanned::new(item.span(), string(item)?)))
            .collect(),
        _ => Err(expected("a string or an array of strings", value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::diagnostic::Severity;

    fn messages(collector: Collector, text: &str) -> Vec<String> {
        collector
            .into_diagnostics(std::path::Path::new("r.toml"), text)
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn collects_every_problem_of_a_table() {
        let text = "[train]\nlr = \"fast\"\nsteps = -3\nbatch_sise = 8\n";
        let document = DeTable::parse(text).unwrap();
        let out = Collector::default();
        let mut root = Table::root(&document, &out);
        let mut train = root.table("train").unwrap();
        assert_eq!(train.required("lr", number), None);
        assert_eq!(train.required("steps", positive), None);
        assert_eq!(train.optional("batch_size", positive), None);
        assert_eq!(train.required("seed", count), None);
        train.finish();
        root.finish();
        let found = messages(out, text);
        assert_eq!(
            found,
            [
                "r.toml:1:1: [train]: missing required key `seed`",
                "r.toml:2:6: `train.lr`: expected a number, found the string \"fast\"",
                "r.toml:3:9: `train.steps`: expected a non-negative integer, found -3",
                "r.toml:4:1: unknown key `batch_sise` in [train]; did you mean `batch_size`? \
                 (known keys: lr, steps, batch_size, seed)",
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn lists_report_each_bad_element_where_it_is() {
        let text = "a = [1, \"x\", 3, true]\nb = [3, 1]\nc = 5";
        let document = DeTable::parse(text).unwrap();
        let out = Collector::default();
        let mut root = Table::root(&document, &out);
        assert!(root.list("a", count, Ok).is_none());
        let increasing = |items: Vec<Spanned<u64>>| match items
            .windows(2)
            .all(|w| w[0].get_ref() < w[1].get_ref())
        {
            true => Ok(items.len()),
            false => Err("not increasing".to_owned()),
        };
        assert!(root.list("b", count, increasing).is_none());
        assert!(root.list("c", count, Ok).is_none());
        root.finish();
        assert_eq!(
            messages(out, text),
            [
                "r.toml:1:9: `a[1]`: expected an integer, found the string \"x\"",
                "r.toml:1:17: `a[3]`: expected an integer, found the boolean true",
                "r.toml:2:5: `b`: not increasing",
                "r.toml:3:5: `c`: expected an array, found the integer 5",
            ]
        );
    }

    #[test]
    fn integers_are_numbers_and_bounds_are_checked() {
        let text = "t = 2\nalpha = 1.5\nx = 0x10";
        let document = DeTable::parse(text).unwrap();
        let out = Collector::default();
        let mut root = Table::root(&document, &out);
        assert_eq!(root.required("t", above_zero), Some(2.0));
        assert_eq!(root.required("alpha", number_in(0.0, 1.0)), None);
        assert_eq!(root.required("x", count), Some(16));
        root.finish();
        assert_eq!(
            messages(out, text),
            ["r.toml:2:9: `alpha`: 1.5 is not between 0 and 1"]
        );
    }
}
