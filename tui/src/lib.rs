//! The terminal client of Mon espace santé (issue 5; F2-F5, F8, F9, F11 as screens),
//! as a library so tests and benchmarks drive the same code the `mes` binary runs.
//!
//! [`app`] is the client: the pure core (`State`, `Action`, `update`, `draw`) and the
//! async shell that feeds it keys and daemon replies. [`cli`] holds the subcommands by
//! family, each with the local API call it makes.

pub mod app;
pub mod cli;
pub mod printable;
