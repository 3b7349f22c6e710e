//! Command handlers: read inputs, build the engine's options, print results.

use super::args::{Cli, Command, GlobalArgs, SaveArgs, UploadArgs, VerifyArgs, VerifyMode};
use crate::bundle::reader::{Bundle, VerifyLevel};
use crate::engine::registries::{Registries, Timeouts};
use crate::engine::report::{Reporter, Verbosity};
use crate::engine::retry::RetryPolicy;
use crate::engine::save::{save, SaveOptions};
use crate::engine::upload::{upload, Destination, UploadOptions};
use crate::registry::RegistryOptions;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a command ended, for the exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Some images or checks failed; the rest was done.
    Failed,
}

pub async fn run(cli: Cli, cancel: CancellationToken) -> Result<Outcome> {
    let reporter = Reporter::new(verbosity(&cli.global));
    match cli.command {
        Command::Save(args) => run_save(args, &cli.global, &reporter, &cancel).await,
        Command::Upload(args) => run_upload(args, &cli.global, &reporter, &cancel).await,
        Command::Verify(args) => run_verify(args, &reporter),
    }
}

fn verbosity(g: &GlobalArgs) -> Verbosity {
    if g.quiet {
        Verbosity::Quiet
    } else if g.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

fn retry_policy(g: &GlobalArgs) -> RetryPolicy {
    RetryPolicy {
        retries: g.retries,
        ..RetryPolicy::default()
    }
}

fn timeouts(g: &GlobalArgs) -> Timeouts {
    Timeouts {
        connect: Some(Duration::from_secs(g.connect_timeout.max(1))),
        read: Some(Duration::from_secs(g.read_timeout.max(1))),
    }
}

/// Reads image references from a list: one a line, blank lines and `#` comments skipped.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = if path == Path::new("-") {
        read_stdin()?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the image list {}", path.display()))?
    };
    Ok(parse_list(&text))
}

fn read_stdin() -> Result<String> {
    let mut text = String::new();
    for line in std::io::stdin().lock().lines() {
        text.push_str(&line.context("cannot read the image list from standard input")?);
        text.push('\n');
    }
    Ok(text)
}

async fn run_save(
    args: SaveArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let mut images = args.images.clone();
    match &args.list {
        Some(path) => images.extend(read_list(path)?),
        None if images.is_empty() && !std::io::stdin().is_terminal() => {
            images.extend(parse_list(&read_stdin()?))
        }
        None => {}
    }
    let opts = SaveOptions {
        out: args.out.clone(),
        prefix: args.prefix.clone(),
        files: args.files as usize,
        jobs: args.jobs as usize,
        bases: args.bases.clone(),
        retry: retry_policy(g),
    };
    let registries = Registries::new(HashMap::new(), timeouts(g));
    let outcome = save(images, &opts, &registries, reporter, cancel).await?;
    outcome.summary.print(reporter);
    println!("{}", outcome.meta_path.display());
    Ok(if outcome.summary.is_success() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

async fn run_upload(
    args: UploadArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let destination = Destination::parse(&args.dst)?;
    let mut configured = HashMap::new();
    if destination.plain_http.is_some() {
        configured.insert(
            destination.host.clone(),
            RegistryOptions {
                plain_http: destination.plain_http,
                ..RegistryOptions::default()
            },
        );
    }
    let opts = UploadOptions {
        destination,
        jobs: args.jobs as usize,
        verify: match args.verify {
            VerifyMode::Full => VerifyLevel::Full,
            VerifyMode::Size => VerifyLevel::Size,
        },
        retry: retry_policy(g),
    };
    let registries = Registries::new(configured, timeouts(g));
    let summary = upload(&args.meta, &opts, &registries, reporter, cancel).await?;
    summary.print(reporter);
    Ok(if summary.is_success() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

fn run_verify(args: VerifyArgs, reporter: &Reporter) -> Result<Outcome> {
    let bundle = Bundle::open(&args.meta).context("cannot open the bundle")?;
    let level = if args.size_only {
        VerifyLevel::Size
    } else {
        VerifyLevel::Full
    };
    match crate::engine::upload::verify_bundle(&bundle, level, reporter) {
        Ok(index) => {
            reporter.warn(&format!(
                "bundle {} is complete: {} data files, {} blobs, {} images{}",
                bundle.meta.name,
                bundle.meta.files.len(),
                index.len(),
                bundle.meta.images.len(),
                if bundle.meta.bases.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", based on {}",
                        bundle
                            .meta
                            .bases
                            .iter()
                            .map(|b| b.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
            Ok(Outcome::Success)
        }
        Err(e) => {
            reporter.warn(&format!("{e:#}"));
            Ok(Outcome::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_skip_blanks_and_comments() {
        assert_eq!(
            parse_list("a\n\n  # note\n b:1 \n#x\n"),
            vec!["a".to_string(), "b:1".to_string()]
        );
    }
}
