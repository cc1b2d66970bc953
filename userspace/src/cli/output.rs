//! Printing: aligned tables for people, one JSON object per line for scripts (Docker's
//! `--format json`), and pretty JSON arrays for `inspect`.

use serde::Serialize;

use super::args::Format;

/// Prints `rows` under `headers` as aligned columns, or each row's JSON object per line.
pub fn print_rows<T: Serialize>(format: Format, headers: &[&str], rows: &[(Vec<String>, T)]) {
    match format {
        Format::Json => {
            for (_, obj) in rows {
                println!("{}", serde_json::to_string(obj).expect("serialisable"));
            }
        }
        Format::Table => {
            let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
            for (cells, _) in rows {
                for (w, c) in widths.iter_mut().zip(cells) {
                    *w = (*w).max(c.len());
                }
            }
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", padded.join("   ").trim_end());
            };
            line(headers.to_vec());
            for (cells, _) in rows {
                line(cells.iter().map(String::as_str).collect());
            }
        }
    }
}

/// `inspect` output: a pretty JSON array, as Docker prints it.
pub fn print_inspect<T: Serialize>(items: &[T]) {
    println!(
        "{}",
        serde_json::to_string_pretty(items).expect("serialisable")
    );
}

/// The first 12 hex digits, as Docker abbreviates ids.
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}
