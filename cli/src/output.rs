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
