//! The documents commands (F3): add, list, search, get, hide, and what parents see of a minor's documents.

use clap::Subcommand;
use mes_protocol::record::documents::{DocQuery, NewDocument};
use mes_protocol::wire::api::ApiCall;
use std::path::PathBuf;

use super::*;

#[derive(Subcommand)]
pub enum DocCmd {
    /// Add a file: `mes doc add scan.pdf --category biology --title "Bilan" --date 2026-01-27`.
    Add {
        file: PathBuf,
        /// Category id (summary, prescriptions, imaging, biology, reports, prevention,
        /// certificates, administrative, questionnaire, other).
        #[arg(long)]
        category: String,
        /// Type code (LOINC or MES-*; default: the category's first).
        #[arg(long = "type", default_value = "")]
        type_code: String,
        /// Title (default: the file name).
        #[arg(long, default_value = "")]
        title: String,
        /// Date of the document, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Author.
        #[arg(long, default_value = "")]
        author: String,
    },
    /// List documents, newest first.
    List {
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Search: keywords over titles and metadata, with filters.
    Search {
        /// Keywords (all must match; case and accents ignored).
        words: Vec<String>,
        #[arg(long, default_value = "")]
        category: String,
        #[arg(long = "type", default_value = "")]
        type_code: String,
        #[arg(long, default_value = "")]
        author: String,
        /// From date, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        from: String,
        /// To date, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        to: String,
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Write a document's file to PATH; prints the absolute path written.
    Get {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a folder of past documents (F3.7) from a manifest: CSV (`,` or `;`) or
    /// JSON with columns file, category, date and optional title, type, class, author,
    /// id. Every row is checked first: one bad row and nothing is imported. Re-running
    /// adds nothing twice.
    Import {
        /// The folder holding the files (manifest paths are relative to it).
        dir: PathBuf,
        /// The manifest (.csv, .json or .jsonl).
        #[arg(long)]
        manifest: PathBuf,
        /// Check only, import nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Hide a document from professionals (F3.3).
    Hide { id: String },
    /// Show a hidden document to professionals again.
    Unhide { id: String },
    /// Keep a document from your parents (a minor whose space was handed over, F9.1).
    HideFromParents { id: String },
    /// Make a document visible to the legal representatives: cannot be undone.
    ShowToParents {
        id: String,
        /// Confirm that this cannot be undone.
        #[arg(long)]
        confirm: bool,
    },
}

impl DocCmd {
    /// The local API call this command makes.
    pub fn call(self) -> CliResult<ApiCall> {
        Ok(match self {
            DocCmd::Import { .. } => {
                return Err(CliError::Usage(
                    "mes doc import is planned by cli::plan, not a single call".into(),
                ))
            }
            DocCmd::Add {
                file,
                category,
                type_code,
                title,
                date,
                author,
            } => ApiCall::DocAdd {
                doc: NewDocument {
                    path: abs(file)?,
                    title,
                    category,
                    type_code,
                    date,
                    author,
                    ..Default::default()
                },
            },
            DocCmd::List { limit } => ApiCall::DocSearch {
                query: DocQuery {
                    limit,
                    ..Default::default()
                },
            },
            DocCmd::Search {
                words,
                category,
                type_code,
                author,
                from,
                to,
                limit,
            } => ApiCall::DocSearch {
                query: DocQuery {
                    text: words.join(" "),
                    category,
                    type_code,
                    author,
                    from,
                    to,
                    hidden: None,
                    limit,
                    excerpts: false,
                },
            },
            DocCmd::Get { id, out } => ApiCall::DocGet { id, out: abs(out)? },
            DocCmd::Hide { id } => ApiCall::DocHide { id, hidden: true },
            DocCmd::Unhide { id } => ApiCall::DocHide { id, hidden: false },
            DocCmd::ShowToParents { id, confirm } => ApiCall::DocShowToRepresentatives {
                id,
                confirmed: confirm,
            },
            DocCmd::HideFromParents { id } => ApiCall::DocHideFromParents { id },
        })
    }
}
