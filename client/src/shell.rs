//! Shell completions and a manual page for each binary (issue 27): `completions
//! bash|zsh|fish|elvish|powershell` and `man` print them on standard output, generated
//! from the binary's own command line, so they never drift from it.
//!
//! ```sh
//! mes completions bash > ~/.local/share/bash-completion/completions/mes
//! mes man > ~/.local/share/man/man1/mes.1
//! ```

pub use clap_complete::Shell;

/// Prints the completions of `C` for `shell`, for the binary called `name`.
pub fn completions<C: clap::CommandFactory>(shell: Shell, name: &str) {
    clap_complete::generate(shell, &mut C::command(), name, &mut std::io::stdout());
}

/// Prints the manual page (roff) of `C`.
pub fn man<C: clap::CommandFactory>() -> std::io::Result<()> {
    clap_mangen::Man::new(C::command()).render(&mut std::io::stdout())
}
