//! Standard output for commands whose output is often piped (`mesh proxy-status | head`):
//! when the reader goes away, the command ends quietly, as Unix tools do on SIGPIPE, instead of
//! panicking the way `println!` does.

use std::io::{ErrorKind, Write};

/// Writes to standard output; ends the process with success if the reader has gone.
pub fn print(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("mesh: cannot write the output: {error}");
            std::process::exit(2);
        }
    }
}

/// Rows as left-aligned columns three spaces apart, one line each.
pub fn columns<R: AsRef<[String]>>(rows: &[R]) -> String {
    let count = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| {
            (rows.iter().filter_map(|r| r.as_ref().get(i)))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = (row.as_ref().iter().zip(&widths))
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("   ").trim_end());
        text.push('\n');
    }
    text
}

/// `print!` through [`print`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::print(format_args!($($arg)*)) };
}

/// `println!` through [`print`].
macro_rules! outln {
    () => { $crate::output::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::print(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};
