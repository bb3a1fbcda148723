//! The eval stage's scores as a table on stdout: teacher and exported student
//! files side by side.

use decant::stage::eval::EvalReport;

pub fn print(report: &EvalReport) {
    let cell = |value: Option<f64>, digits: usize| {
        value.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
    };
    println!(
        "{:<10} {:>12} {:>10} {:>9} {:>8} {:>6} {:>6} {:>7} {:>10}  model",
        "", "parameters", "MiB", "ppl", "kld", "top1", "exact", "tok/s", "cascade"
    );
    for m in &report.models {
        let cascade = m
            .cascade
            .as_ref()
            .and_then(|c| c.chosen)
            .map_or("-".to_owned(), |p| {
                format!("{:.0}%≥{:.2}", 100.0 * p.coverage, p.threshold)
            });
        println!(
            "{:<10} {:>12} {:>10.1} {:>9} {:>8} {:>6} {:>6} {:>7} {:>10}  {}",
            m.label,
            m.parameters,
            m.file_size as f64 / (1 << 20) as f64,
            cell(m.ppl, 3),
            cell(m.kld, 4),
            cell(m.top1, 3),
            cell(m.exact_match, 3),
            cell(m.tokens_per_s, 1),
            cascade,
            m.model.display()
        );
    }
    println!("on {} examples of {}", report.examples, report.data);
}
