//! `mes doc import DIR --manifest FILE` (F3.7): reads the manifest, gives each file an id
//! from its content (so a re-run adds nothing twice), has the daemon check every row
//! before anything is written, then adds the documents with a progress bar. Any bad row
//! stops the import before the first document; an interrupted import is finished by
//! running it again.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mes_client::ApiClient;
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiCall, ApiReply};
use std::path::Path;

use crate::manifest::{self, Problem, Row};

/// What an import did, printed at the end.
#[derive(serde::Serialize)]
struct Outcome {
    imported: usize,
    already_present: usize,
    total: usize,
}

/// Runs an import; `Ok(false)` when rows were refused (reported on stdout or stderr).
pub async fn run(
    client: &mut ApiClient,
    space: Option<SpaceId>,
    dir: &Path,
    manifest_path: &Path,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("cannot read manifest {}", manifest_path.display()))?;
    let is_json = manifest_path
        .extension()
        .is_some_and(|e| e == "json" || e == "jsonl");
    let dir = std::path::absolute(dir)?;
    let mut rows = match manifest::parse(&text, is_json) {
        Ok(rows) => rows,
        Err(problems) => return report(&problems, json).map(|_| false),
    };
    for r in &mut rows {
        let path = dir.join(&r.doc.path);
        if r.doc.id.is_empty() {
            // Unreadable files keep an empty id; the daemon's check names them.
            if let Ok(bytes) = std::fs::read(&path) {
                r.doc.id = content_id(&bytes);
            }
        }
        r.doc.path = path.to_string_lossy().into_owned();
    }
    let docs = rows.iter().map(|r| r.doc.clone()).collect();
    let check = match client.call(space, ApiCall::DocCheck { docs }).await?? {
        ApiReply::DocChecked(c) => c,
        other => anyhow::bail!("unexpected reply {other:?}"),
    };
    if !check.problems.is_empty() {
        let problems: Vec<Problem> = check
            .problems
            .iter()
            .map(|p| Problem {
                line: rows[p.row as usize].line,
                reason: p.reason.clone(),
            })
            .collect();
        return report(&problems, json).map(|_| false);
    }
    let todo: Vec<&Row> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| !check.present.contains(&(*i as u32)))
        .map(|(_, r)| r)
        .collect();
    let outcome = Outcome {
        imported: if dry_run { 0 } else { todo.len() },
        already_present: check.present.len(),
        total: rows.len(),
    };
    if !dry_run {
        let bar = ProgressBar::with_draw_target(
            Some(todo.len() as u64),
            if json {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        )
        .with_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} documents  {eta}  {wide_msg}",
            )?
            .progress_chars("█▓░"),
        );
        for r in todo {
            bar.set_message(r.doc.title.clone());
            client
                .call(space, ApiCall::DocAdd { doc: r.doc.clone() })
                .await?
                .map_err(|e| anyhow::anyhow!("line {}: {}", r.line, e.message))?;
            bar.inc(1);
        }
        bar.finish_with_message("");
    }
    if json {
        println!("{}", serde_json::to_string(&outcome)?);
    } else {
        println!(
            "{} importé(s) / imported, {} déjà présent(s) / already present, {} au total / in all{}",
            outcome.imported,
            outcome.already_present,
            outcome.total,
            if dry_run { " (essai / dry run)" } else { "" }
        );
    }
    Ok(true)
}

/// A document id from the file's content: the same file is the same document.
fn content_id(bytes: &[u8]) -> String {
    format!("imp-{}", &blake3::hash(bytes).to_hex()[..16])
}

fn report(problems: &[Problem], json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<_> = problems
            .iter()
            .map(|p| serde_json::json!({ "line": p.line, "reason": p.reason }))
            .collect();
        println!("{}", serde_json::json!({ "problems": list, "imported": 0 }));
    } else {
        for p in problems {
            eprintln!("ligne / line {}: {}", p.line, p.reason);
        }
        eprintln!(
            "rien n'a été importé / nothing was imported ({} ligne(s) à corriger / line(s) to fix)",
            problems.len()
        );
    }
    Ok(())
}
