//! The job queue: one job runs at a time, the others wait their turn. A job is a
//! `ferry` command line, parsed by the same parser as the terminal's and run
//! in-process through [`crate::cli::run::run_with`] on a thread and runtime of its
//! own (so a blocking verify cannot stall the web server), with a cancellation
//! token that does what Ctrl-C does: the partial bundle stays and the same command
//! resumes it. Finished jobs are kept in memory and in `DIR/.ferry-ui/history.json`.

use super::watch::{ImageRow, LogLine, SummaryRecord, Watch};
use crate::cli::run::Outcome;
use crate::engine::report::{describe, Reporter, Sink};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Finished jobs kept in the history.
const KEEP_FINISHED: usize = 100;
/// Log lines kept with a finished job.
const KEEP_LINES: usize = 300;
/// Longest log line kept in the history file.
const MAX_LINE_CHARS: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    /// Ran to its end, with some images or checks failed.
    Partial,
    /// Stopped on an error.
    Failed,
    /// Stopped on request (resumable, as after Ctrl-C).
    Cancelled,
    /// `ferry ui` itself stopped while the job was queued or running.
    Interrupted,
}

impl JobState {
    pub fn is_over(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    /// save, upload, sync, verify, copy, export.
    pub kind: String,
    pub title: String,
    pub argv: Vec<String>,
    /// The same command for a terminal, quoted for a POSIX shell.
    pub command: String,
    pub state: JobState,
    pub queued_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub summary: Option<SummaryRecord>,
    #[serde(default)]
    pub images: Vec<ImageRow>,
    #[serde(default)]
    pub log_tail: Vec<LogLine>,
}

/// A job to queue: what [`super::forms`] built.
pub struct NewJob {
    pub kind: String,
    pub title: String,
    pub argv: Vec<String>,
    pub images: Vec<String>,
}

struct Running {
    id: u64,
    cancel: CancellationToken,
}

struct Inner {
    records: Vec<JobRecord>,
    next_id: u64,
    running: Option<Running>,
    /// The watch of the running job, or of the last one (its bars stay visible).
    watch: Option<(u64, Arc<Watch>)>,
}

pub struct Jobs {
    inner: Mutex<Inner>,
    wake: Notify,
    file: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct HistoryFile {
    version: u32,
    jobs: Vec<JobRecord>,
}

fn now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

impl Jobs {
    /// Opens the history in `dir` (created if needed). A history that cannot be read
    /// is moved aside and reported; jobs that were queued or running when the last
    /// `ferry ui` stopped are marked interrupted.
    pub fn open(dir: &Path) -> (Jobs, Option<String>) {
        let file = dir.join("history.json");
        let mut note = None;
        let mut records = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<HistoryFile>(&bytes) {
                Ok(h) => h.jobs,
                Err(e) => {
                    let aside = dir.join("history.json.unreadable");
                    let _ = std::fs::rename(&file, &aside);
                    note = Some(crate::tr!(
                        "the job history {} could not be read ({e}); it was moved to {} and a new one is started",
                        "无法读取任务历史 {} ({e}); 已移到 {}, 重新开始记录",
                        file.display(),
                        aside.display()
                    ));
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        };
        for r in &mut records {
            if !r.state.is_over() {
                r.state = JobState::Interrupted;
            }
        }
        let next_id = records
            .iter()
            .map(|r| r.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        (
            Jobs {
                inner: Mutex::new(Inner {
                    records,
                    next_id,
                    running: None,
                    watch: None,
                }),
                wake: Notify::new(),
                file,
            },
            note,
        )
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id the next queued job will get (for previews).
    pub fn next_id(&self) -> u64 {
        self.inner().next_id
    }

    /// Queues a job built by `build` with its id; returns the record.
    pub fn enqueue(
        &self,
        build: impl FnOnce(u64) -> Result<NewJob, String>,
    ) -> Result<JobRecord, String> {
        let mut inner = self.inner();
        let id = inner.next_id;
        let job = build(id)?;
        inner.next_id = inner.next_id.saturating_add(1);
        let record = JobRecord {
            id,
            kind: job.kind,
            title: job.title,
            command: shell_line(&job.argv),
            argv: job.argv,
            state: JobState::Queued,
            queued_at: now(),
            started_at: None,
            finished_at: None,
            error: None,
            summary: None,
            images: job
                .images
                .into_iter()
                .map(|reference| ImageRow {
                    reference,
                    state: super::watch::ImageState::Working,
                    reason: None,
                })
                .collect(),
            log_tail: Vec::new(),
        };
        inner.records.push(record.clone());
        self.save(&inner);
        drop(inner);
        self.wake.notify_one();
        Ok(record)
    }

    /// Every job, newest first, without log tails.
    pub fn list(&self) -> Vec<JobRecord> {
        let inner = self.inner();
        inner
            .records
            .iter()
            .rev()
            .map(|r| JobRecord {
                log_tail: Vec::new(),
                ..r.clone()
            })
            .collect()
    }

    /// One job; a running job's images and summary are the live ones.
    pub fn get(&self, id: u64) -> Option<JobRecord> {
        let inner = self.inner();
        let mut record = inner.records.iter().find(|r| r.id == id)?.clone();
        if let Some((wid, watch)) = &inner.watch {
            if *wid == id && record.state == JobState::Running {
                record.images = watch.images();
                record.summary = watch.summary();
                record.log_tail = watch.tail(KEEP_LINES);
            }
        }
        Some(record)
    }

    /// The watch of job `id`, while it runs and after, until the next job starts.
    pub fn watch(&self, id: u64) -> Option<Arc<Watch>> {
        match &self.inner().watch {
            Some((wid, w)) if *wid == id => Some(w.clone()),
            _ => None,
        }
    }

    /// The job the Progress screen shows by default: the running one, else the
    /// first queued, else the last one that ran.
    pub fn current(&self) -> Option<u64> {
        let inner = self.inner();
        inner
            .running
            .as_ref()
            .map(|r| r.id)
            .or_else(|| {
                inner
                    .records
                    .iter()
                    .find(|r| r.state == JobState::Queued)
                    .map(|r| r.id)
            })
            .or_else(|| inner.watch.as_ref().map(|(id, _)| *id))
            .or_else(|| inner.records.last().map(|r| r.id))
    }

    /// Cancels a queued job at once, or asks the running one to stop. False when
    /// the job is unknown or already over.
    pub fn cancel(&self, id: u64) -> bool {
        let mut inner = self.inner();
        if let Some(r) = inner.running.as_ref().filter(|r| r.id == id) {
            r.cancel.cancel();
            return true;
        }
        let Some(record) = inner
            .records
            .iter_mut()
            .find(|r| r.id == id && r.state == JobState::Queued)
        else {
            return false;
        };
        record.state = JobState::Cancelled;
        record.finished_at = Some(now());
        self.save(&inner);
        true
    }

    /// Queues a finished job's command again: a cancelled save resumes its partial
    /// bundle, as the same command would in a terminal.
    pub fn again(&self, id: u64) -> Result<JobRecord, String> {
        let old = self
            .inner()
            .records
            .iter()
            .find(|r| r.id == id && r.state.is_over())
            .cloned()
            .ok_or_else(|| {
                crate::i18n::t("no finished job with that number", "没有该编号的已结束任务")
                    .to_string()
            })?;
        self.enqueue(|_| {
            Ok(NewJob {
                kind: old.kind,
                title: old.title,
                argv: old.argv,
                images: old.images.into_iter().map(|i| i.reference).collect(),
            })
        })
    }

    /// Marks the jobs still waiting as interrupted (`ferry ui` is stopping).
    pub fn interrupt_queued(&self) {
        let mut inner = self.inner();
        let mut changed = false;
        for r in inner
            .records
            .iter_mut()
            .filter(|r| r.state == JobState::Queued)
        {
            r.state = JobState::Interrupted;
            r.finished_at = Some(now());
            changed = true;
        }
        if changed {
            self.save(&inner);
        }
    }

    /// Takes the first queued job and marks it running.
    fn start_next(
        &self,
        parent: &CancellationToken,
    ) -> Option<(u64, Vec<String>, Arc<Watch>, CancellationToken)> {
        let mut inner = self.inner();
        if inner.running.is_some() {
            return None;
        }
        let record = inner
            .records
            .iter_mut()
            .find(|r| r.state == JobState::Queued)?;
        record.state = JobState::Running;
        record.started_at = Some(now());
        let id = record.id;
        let argv = record.argv.clone();
        let refs: Vec<String> = record.images.iter().map(|i| i.reference.clone()).collect();
        let watch = Arc::new(Watch::new(&refs));
        let cancel = parent.child_token();
        inner.running = Some(Running {
            id,
            cancel: cancel.clone(),
        });
        inner.watch = Some((id, watch.clone()));
        self.save(&inner);
        Some((id, argv, watch, cancel))
    }

    fn finish(&self, id: u64, result: anyhow::Result<Outcome>, cancelled: bool, watch: &Watch) {
        let (state, error) = match result {
            Ok(Outcome::Success | Outcome::Stopped) => (JobState::Succeeded, None),
            Ok(Outcome::Failed) => (JobState::Partial, None),
            Err(e) => {
                let text = describe(&e);
                watch.line(
                    true,
                    &format!("{}: {text}", crate::i18n::t("error", "错误")),
                );
                if cancelled {
                    (JobState::Cancelled, Some(text))
                } else {
                    (JobState::Failed, Some(text))
                }
            }
        };
        watch.finish(matches!(state, JobState::Succeeded | JobState::Partial));
        let mut inner = self.inner();
        inner.running = None;
        if let Some(record) = inner.records.iter_mut().find(|r| r.id == id) {
            record.state = state;
            record.finished_at = Some(now());
            record.error = error;
            record.summary = watch.summary();
            record.images = watch.images();
            record.log_tail = watch
                .tail(KEEP_LINES)
                .into_iter()
                .map(|mut l| {
                    if l.text.chars().count() > MAX_LINE_CHARS {
                        l.text = l.text.chars().take(MAX_LINE_CHARS).collect::<String>() + "…";
                    }
                    l
                })
                .collect();
        }
        // Keep the last finished jobs (and every queued one).
        let finished = inner.records.iter().filter(|r| r.state.is_over()).count();
        let mut drop_n = finished.saturating_sub(KEEP_FINISHED);
        inner.records.retain(|r| {
            if drop_n > 0 && r.state.is_over() {
                drop_n -= 1;
                false
            } else {
                true
            }
        });
        self.save(&inner);
    }

    /// Writes the history file (a temporary file renamed over the old one); a write
    /// that fails leaves the old file and is not fatal: the history is a convenience.
    fn save(&self, inner: &Inner) {
        let history = HistoryFile {
            version: 1,
            jobs: inner.records.clone(),
        };
        let Ok(bytes) = serde_json::to_vec_pretty(&history) else {
            return;
        };
        let tmp = self.file.with_extension("json.tmp");
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }
}

/// Runs queued jobs one after the other until `cancel` fires (then the running job
/// is stopped as by Ctrl-C and recorded, and the worker returns).
pub async fn worker(jobs: Arc<Jobs>, cancel: CancellationToken) {
    loop {
        let Some((id, argv, watch, token)) = jobs.start_next(&cancel) else {
            tokio::select! {
                _ = jobs.wake.notified() => continue,
                _ = cancel.cancelled() => return,
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink: Arc<dyn Sink> = watch.clone();
        let job_cancel = token.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ferry-ui-job-{id}"))
            .spawn(move || {
                let _ = tx.send(run_job(argv, job_cancel, sink));
            });
        let result = match spawned {
            Ok(_) => rx.await.unwrap_or_else(|_| {
                Err(anyhow!(crate::i18n::t(
                    "the job stopped unexpectedly (see the terminal where ferry ui runs)",
                    "任务意外终止 (请查看运行 ferry ui 的终端)"
                )))
            }),
            Err(e) => Err(anyhow::Error::from(e).context(crate::i18n::t(
                "cannot start a thread for the job",
                "无法为任务启动线程",
            ))),
        };
        jobs.finish(id, result, token.is_cancelled(), &watch);
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// One job on its own runtime, exactly as the terminal would run it.
fn run_job(
    argv: Vec<String>,
    cancel: CancellationToken,
    sink: Arc<dyn Sink>,
) -> anyhow::Result<Outcome> {
    let cli = crate::cli::parse::try_parse(argv).map_err(|e| anyhow!(e))?;
    let reporter = Reporter::with_sink(crate::cli::run::verbosity(&cli.global), sink);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(crate::cli::run::run_with(cli, cancel, reporter))
}

/// The argument vector as a POSIX shell line: words with anything but safe
/// characters are single-quoted.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c));
            if safe {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_quote_what_a_shell_would_split() {
        let argv: Vec<String> = ["ferry", "save", "--list", "my list.txt", "it's", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_line(&argv),
            "ferry save --list 'my list.txt' 'it'\\''s' ''"
        );
    }

    #[test]
    fn a_history_left_running_reads_back_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, note) = Jobs::open(dir.path());
        assert!(note.is_none());
        let r = jobs
            .enqueue(|_| {
                Ok(NewJob {
                    kind: "verify".into(),
                    title: "verify".into(),
                    argv: vec!["ferry".into(), "verify".into(), "x_meta.yaml".into()],
                    images: vec![],
                })
            })
            .unwrap();
        assert_eq!(r.state, JobState::Queued);
        let (again, _) = Jobs::open(dir.path());
        assert_eq!(again.list()[0].state, JobState::Interrupted);
        assert_eq!(again.next_id(), r.id + 1);
    }

    #[test]
    fn an_unreadable_history_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("history.json"), b"{not json").unwrap();
        let (jobs, note) = Jobs::open(dir.path());
        assert!(note.is_some());
        assert!(jobs.list().is_empty());
        assert!(dir.path().join("history.json.unreadable").exists());
    }
}
