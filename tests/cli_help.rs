//! `decant --help` lists exactly the commands that work: no placeholders.

mod common;

use common::{decant, stdout};

#[test]
fn help_lists_only_working_commands() {
    let out = decant(&["--help"]);
    let help = stdout(&out);
    let mut commands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    commands.sort_unstable();
    assert_eq!(
        commands,
        [
            "cache-teacher",
            "data",
            "distill",
            "eval",
            "export",
            "generate",
            "help",
            "imatrix",
            "inspect",
            "label",
            "logits",
            "publish",
            "qat",
            "quantize",
            "recipe",
            "run",
            "tokenize"
        ],
        "{help}"
    );
}
