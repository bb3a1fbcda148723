//! Fuzzing of recipes as `decant::recipe::parse` checks them: arbitrary text,
//! TOML-shaped text, and the shipped recipes with lines deleted, duplicated or
//! swapped, values replaced by hostile ones (sizes of 2^64, negatives, NaN,
//! wrong types, paths out of the directory) and text inserted or cut anywhere.
//! No case may panic; every refusal must be diagnostics placed inside the
//! text, and no case may allocate more than a bound derived from its length.
//!
//! CI runs the default count below (seconds in a debug build); the longer run:
//! `PROPTEST_CASES=20000 cargo nextest run -p decant --test fuzz_recipe`

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use decant::recipe::{self, RecipeError, Severity};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The shipped recipes, and a directory laid out as they expect (`recipes/`
/// beside `data/`), so that the unedited ones check and edits reach every
/// section's checks rather than stopping at missing data.
struct Shipped {
    _root: tempfile::TempDir,
    recipes: Vec<(PathBuf, String)>,
}

fn shipped() -> &'static Shipped {
    static SHIPPED: OnceLock<Shipped> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let record =
            r#"{"prompt": "Extract the city: Ana moved to Porto.", "completion": "Porto"}"#;
        for file in [
            "data/extract/train.jsonl",
            "data/extract/eval.jsonl",
            "data/nightly/2026-11-30.jsonl",
        ] {
            let path = root.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{record}\n")).unwrap();
        }
        std::fs::create_dir(root.path().join("recipes")).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut recipes: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .map(|path| {
                let at = root.path().join("recipes").join(path.file_name().unwrap());
                (at, std::fs::read_to_string(path).unwrap())
            })
            .collect();
        recipes.sort();
        assert!(!recipes.is_empty());
        Shipped {
            _root: root,
            recipes,
        }
    })
}

/// The document and the diagnostics hold the text's keys, values and spans
/// a few times over; a diagnostic's message is at most a few hundred bytes
/// (with a suggested spelling) and there is at most about one per key or
/// value, so per byte of text 64 bytes cover both.
fn bound(text_len: usize) -> usize {
    64 * text_len + (256 << 10)
}

fn check(path: &Path, text: &str) {
    let (result, peak) = testkit::peak_during(|| recipe::parse(path, text));
    assert!(
        peak <= bound(text.len()),
        "{peak} bytes for {} bytes of recipe",
        text.len()
    );
    let lines = text.lines().count() + 1;
    match result {
        Ok(_) => {}
        Err(RecipeError::Invalid { diagnostics }) => {
            assert!(
                diagnostics.iter().any(|d| d.severity == Severity::Error),
                "refused without an error: {diagnostics:?}"
            );
            for d in &diagnostics {
                assert!(
                    d.file == path && (1..=lines).contains(&d.line) && d.column >= 1,
                    "{d}"
                );
            }
        }
        Err(other) => panic!("parse cannot fail to read: {other}"),
    }
}

#[derive(Clone, Debug)]
enum TextEdit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// What follows the `=` of a line.
    ReplaceValue(usize, String),
    Insert(usize, String),
    Truncate(usize),
}

fn hostile_value() -> impl Strategy<Value = String> {
    let fixed = [
        "18446744073709551616",
        "18446744073709551615",
        "9223372036854775807",
        "-9223372036854775808",
        "1099511627776",
        "0",
        "-1",
        "1e999",
        "-0.0",
        "nan",
        "inf",
        "-inf",
        "true",
        "\"\"",
        "[]",
        "{}",
        "[[]]",
        "\"../../../etc/passwd\"",
        "\"/dev/zero\"",
        "\"~\"",
        "\"~/\"",
        "\"\\u0000\"",
        "\"é\"",
        "1979-05-27T07:32:00Z",
        "\"\"\"\nmulti\nline\"\"\"",
        "{ kind = \"\" }",
        "[1, \"a\", 2.5]",
    ];
    prop_oneof![
        3 => proptest::sample::select(fixed.to_vec()).prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| v.to_string()),
        1 => "[ -~é]{0,16}",
    ]
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        1 => any::<usize>().prop_map(TextEdit::DeleteLine),
        1 => any::<usize>().prop_map(TextEdit::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| TextEdit::SwapLines(a, b)),
        3 => (any::<usize>(), hostile_value()).prop_map(|(l, v)| TextEdit::ReplaceValue(l, v)),
        2 => (any::<usize>(), "[ -~\n\\[\\]=\"'é\u{1F600}]{1,16}")
            .prop_map(|(at, s)| TextEdit::Insert(at, s)),
        1 => any::<usize>().prop_map(TextEdit::Truncate),
    ]
}

/// The char boundary at or before `at`, taken modulo the length.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edit: &TextEdit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = |i: usize| i % lines.len().max(1);
    match edit {
        TextEdit::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(line(*i));
        }
        TextEdit::DuplicateLine(i) if !lines.is_empty() => {
            let i = line(*i);
            lines.insert(i, lines[i].clone());
        }
        TextEdit::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (line(*a), line(*b));
            lines.swap(a, b);
        }
        TextEdit::ReplaceValue(i, value) => {
            let with_values: Vec<usize> = (0..lines.len())
                .filter(|&l| lines[l].contains('='))
                .collect();
            if let Some(&l) = with_values.get(i % with_values.len().max(1)) {
                let key = lines[l].split('=').next().unwrap().to_owned();
                lines[l] = format!("{key}= {value}");
            }
        }
        TextEdit::Insert(at, inserted) => {
            let i = boundary(text, *at);
            return format!("{}{inserted}{}", &text[..i], &text[i..]);
        }
        TextEdit::Truncate(at) => return text[..boundary(text, *at)].to_owned(),
        _ => {}
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases(2048))
    })]

    #[test]
    fn arbitrary_text_is_diagnosed(text in ".{0,300}") {
        check(&shipped().recipes[0].0, &text);
    }

    #[test]
    fn toml_shaped_text_is_diagnosed(
        text in r#"(\[{1,2}[a-z_.]{0,12}\]{1,2}\n|[a-z_]{1,14} = ("[^"\n]{0,12}"|-?[0-9][0-9_.eE+-]{0,12}|true|\{ [a-z_]{1,8} = [0-9a-z"]{1,6} \}|\[[0-9, "a-z]{0,16}\])\n){0,24}"#,
    ) {
        check(&shipped().recipes[0].0, &text);
    }

    #[test]
    fn edited_shipped_recipes_check_or_are_diagnosed(
        which in any::<usize>(),
        edits in proptest::collection::vec(text_edit(), 1..5),
    ) {
        let (path, text) = &shipped().recipes[which % shipped().recipes.len()];
        let edited = edits.iter().fold(text.clone(), |text, edit| apply(&text, edit));
        check(path, &edited);
    }
}

/// The edits start from recipes that check, so that each edit is what a
/// refusal answers.
#[test]
fn the_shipped_recipes_check_within_the_bound() {
    for (path, text) in &shipped().recipes {
        check(path, text);
        if let Err(err) = recipe::parse(path, text) {
            panic!("{}: {err}", path.display());
        }
    }
}
